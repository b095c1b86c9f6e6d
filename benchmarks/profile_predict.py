"""Where prediction time goes: ``Extractor.predict`` over ``--limit`` sentences, its wall time split into

* ``body``: the transformer body's forward passes (``ModelPasses.run`` and the prompt-header prefill), and
  within them, from a ``torch.profiler`` pass over ``--op-sentences`` sentences, the share of the matmuls
  (``mm``/``addmm``/``bmm``/``mv``), of attention (``*attention*``, ``softmax``) and of the other ops;
* ``lm_head``: the LM head over the grammar's candidates (``ModelPasses.best`` and ``choose``);
* ``grammar``: grammar and candidate bookkeeping of the constrained decoder (proposals, verification,
  starting and finishing rows; the model calls inside are counted under their own heading);
* ``tokenisation``: every tokenizer call (prompts, windows, proposals);
* ``parsing``: reading the answers back and merging windows;
* ``python overhead``: the rest, i.e. the scheduling between passes.

Each heading counts its own time only (a nested call is counted under its own heading), so the rows add
up to the total. The timers cost a few microseconds a call; the profiler pass is separate and untimed.
It also reports the tokens fed to the body and the FLOP rate they make (2 x body parameters per token;
attention left out), against ``--peak-gflops`` when given.

    python benchmarks/profile_predict.py --adapter conll2003 --limit 48 --threads 2
    python benchmarks/profile_predict.py --adapter conll2003 --limit 48 --threads 2 --merge

Writes benchmarks/results/profile_predict.json and .md (``--name`` changes the stem) and prints the table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nerre.atomic import write_text
from nerre.decoding.passes import ModelPasses
from nerre.decoding.speculative import SpeculativeDecoder
from nerre.loaders import load_examples
from nerre.metrics import score_entities
from nerre.models import transformer_body
from nerre.predict import Extractor

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HEADINGS = ("body", "lm_head", "grammar", "tokenisation", "parsing", "python overhead")
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::mv", "aten::baddbmm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", required=True, help="adapter folder, or the name of a shipped adapter")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "conll2003" / "test.txt")
    parser.add_argument("--format", help="corpus format (detected when omitted)")
    parser.add_argument("--limit", type=int, default=48, help="sentences to time (after one untimed warm-up)")
    parser.add_argument("--batch-size", type=int, default=8, help="Extractor batch_size")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--merge", action="store_true", help="merge the LoRA weights into the base model first")
    parser.add_argument("--op-sentences", type=int, default=8, help="sentences of the torch.profiler pass (0: none)")
    parser.add_argument("--peak-gflops", type=float, help="the machine's fp32 peak, for the share reached")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="profile_predict", help="stem of the result files")
    return parser.parse_args(argv)


class Timers:
    """Exclusive time per heading: entering a timed call pauses the one it is nested in."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()
        self.calls: Counter = Counter()
        self.body_tokens = 0
        self._stack: list[list[Any]] = []
        self._patched: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, heading: str) -> None:
        original = owner.__dict__[name] if name in owner.__dict__ else getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            now = time.perf_counter()
            if self._stack:
                self.seconds[self._stack[-1][0]] += now - self._stack[-1][1]
            self._stack.append([heading, now])
            try:
                return original(*args, **kwargs)
            finally:
                end = time.perf_counter()
                self.seconds[heading] += end - self._stack.pop()[1]
                self.calls[heading] += 1
                if self._stack:
                    self._stack[-1][1] = end

        self._patched.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched.clear()


def install(timers: Timers, extractor: Extractor) -> None:
    """Time every heading's calls (class attributes: the decoder's instances pick them up)."""
    import nerre.predict

    tokenizer_class = type(extractor.tokenizer)
    for name in ("__call__", "apply_chat_template", "decode"):
        timers.wrap(tokenizer_class, name, "tokenisation")
    original_run = ModelPasses.run

    def counted_run(self: ModelPasses, caches: Any, inputs: list[list[int]], packed: bool) -> Any:
        timers.body_tokens += sum(len(ids) for ids in inputs)
        return original_run(self, caches, inputs, packed)

    ModelPasses.run = counted_run
    timers._patched.append((ModelPasses, "run", original_run))
    timers.wrap(ModelPasses, "run", "body")
    timers.wrap(ModelPasses, "prefill", "body")
    timers.wrap(ModelPasses, "best", "lm_head")
    timers.wrap(ModelPasses, "choose", "lm_head")  # the scored path: the same head, its logits kept
    for name in ("_propose", "_verify", "_start", "_finish", "prepare_prefix"):
        timers.wrap(SpeculativeDecoder, name, "grammar")
    timers.wrap(type(extractor.formulation), "parse", "parsing")
    timers.wrap(nerre.predict, "_merge", "parsing")


def op_shares(extractor: Extractor, examples: list[Any]) -> dict[str, Any]:
    """Self CPU time of the ops inside the body's passes, by kind, from one ``torch.profiler`` pass."""
    from torch.profiler import ProfilerActivity, profile, record_function

    original = ModelPasses.run

    def labelled(self: ModelPasses, *args: Any, **kwargs: Any) -> Any:
        with record_function("nerre.body"):
            return original(self, *args, **kwargs)

    ModelPasses.run = labelled
    try:
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            list(extractor.predict(examples))
    finally:
        ModelPasses.run = original
    kinds: Counter = Counter()
    flops = 0
    for event in prof.events():
        parent, inside = event.cpu_parent, False
        while parent is not None and not inside:
            inside, parent = parent.name == "nerre.body", parent.cpu_parent
        if not inside or event.name == "nerre.body":
            continue
        name = event.name
        kind = "matmul" if name in MATMUL_OPS else "attention" if ("attention" in name or "softmax" in name) else "other"
        kinds[kind] += event.self_cpu_time_total
        flops += event.flops or 0
    total = sum(kinds.values()) or 1
    return {"shares": {k: round(kinds[k] / total, 3) for k in ("matmul", "attention", "other")},
            "profiled_sentences": len(examples), "profiler_matmul_gflop": round(flops / 1e9, 3)}


def body_parameters(extractor: Extractor) -> int:
    """Parameters of the body that every token goes through (embeddings left out)."""
    body = transformer_body(extractor.model)
    embeddings = body.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in body.parameters()) - embeddings


def markdown(report: dict[str, Any]) -> str:
    config, rows = report["config"], report["rows"]
    lines = [
        f"Prediction profile: {config['adapter']} ({'merged' if config['merge'] else 'LoRA'}), {config['sentences']} "
        f"sentences of {config['data']}, {config['threads']} torch thread(s), batch size {config['batch_size']}, "
        f"{config['device']}.",
        "",
        "| part | seconds | share | ms/sentence | calls |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['part']} | {row['seconds']:.2f} | {100 * row['share']:.1f}% | {row['ms_per_sentence']:.1f} | "
                     f"{row['calls']} |")
    summary = report["summary"]
    lines += [
        "",
        f"Total {summary['seconds']:.2f} s: {summary['sentences_per_s']:.2f} sentences/s, entity F1 "
        f"{summary['entity_f1']}. Body: {summary['body_tokens']} tokens fed, {summary['body_gflop']:.1f} GFLOP "
        f"(2 x {summary['body_parameters'] / 1e6:.1f}M parameters per token), {summary['body_gflops']:.1f} GFLOP/s"
        + (f", {100 * summary['peak_share']:.0f}% of the {config['peak_gflops']} GFLOP/s peak" if summary.get("peak_share")
           else "") + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    extractor = Extractor.load(args.adapter, batch_size=args.batch_size, merge=args.merge)
    examples = [ex for ex in load_examples(args.data, args.format) if ex.text.strip()][: args.limit + 1]
    warmup, examples = examples[:1], examples[1:]
    list(extractor.predict(warmup * 2))  # token table, prompt-header prefill, check of packed passes
    timers = Timers()
    install(timers, extractor)
    started = time.perf_counter()
    try:
        predictions = [p.example for p in extractor.predict(examples)]
    finally:
        timers.restore()
    total = time.perf_counter() - started
    timers.seconds["python overhead"] = max(0.0, total - sum(timers.seconds[h] for h in HEADINGS[:-1]))
    ops = op_shares(extractor, examples[: args.op_sentences]) if args.op_sentences else None
    rows = []
    for heading in HEADINGS:
        seconds = timers.seconds[heading]
        rows.append({"part": heading, "seconds": round(seconds, 3), "share": round(seconds / total, 4),
                     "ms_per_sentence": round(1000 * seconds / len(examples), 2), "calls": timers.calls[heading] or ""})
        if heading == "body" and ops:
            for kind, share in ops["shares"].items():
                part = seconds * share
                rows.append({"part": f"  body: {kind}", "seconds": round(part, 3), "share": round(part / total, 4),
                             "ms_per_sentence": round(1000 * part / len(examples), 2), "calls": ""})
    parameters = body_parameters(extractor)
    gflop = 2 * parameters * timers.body_tokens / 1e9
    gflops = gflop / timers.seconds["body"] if timers.seconds["body"] else 0.0
    summary = {
        "seconds": round(total, 3),
        "sentences_per_s": round(len(examples) / total, 3),
        "entity_f1": round(score_entities(examples, predictions).micro.f1, 4),
        "body_tokens": timers.body_tokens,
        "body_parameters": parameters,
        "body_gflop": round(gflop, 2),
        "body_gflops": round(gflops, 2),
        "peak_share": round(gflops / args.peak_gflops, 3) if args.peak_gflops else None,
    }
    config = {
        "adapter": str(args.adapter),
        "merge": args.merge,
        "data": str(args.data),
        "sentences": len(examples),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "peak_gflops": args.peak_gflops,
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "torch": torch.__version__,
    }
    report = {"config": config, "rows": rows, "summary": summary, "ops": ops}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_text(args.output_dir / f"{args.name}.json", json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    write_text(args.output_dir / f"{args.name}.md", table)
    print(table)
    return report


if __name__ == "__main__":
    main()
