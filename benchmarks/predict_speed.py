"""Benchmark prediction: plain ``generate`` vs nerre's constrained speculative decoder, with entity F1.

Methods, each over the same ``--limit`` sentences (after one untimed warm-up sentence). The
sentences, longest prompt first (as nerre's generation loader orders them), are taken in chunks of
``--batch-size`` and every method runs on a chunk before the next chunk starts, so that a change in
the load of a shared machine affects all methods alike:

* ``generate-b1``: plain greedy ``model.generate``, one sentence at a time;
* ``generate-batched``: plain greedy ``generate``, ``--batch-size`` sentences per call (left padding);
* ``prompt-lookup``: ``generate(prompt_lookup_num_tokens=--prompt-lookup)``, one at a time;
* ``constrained``: nerre's faithful constrained decoder with copy speculation (``--speculate``),
  the prompt-header cache shared across sentences and ``--batch-size`` sentences packed per pass;
* ``constrained-unscored``: the same without keeping the log-probability of each decision
  (``DecodeOptions(scores=False)``): the decoder as it was before scores; ``constrained`` gets
  ``same_as_unscored`` and ``time_vs_unscored``;
* ``constrained-b1``: the same, one sentence at a time (no packing);
* ``constrained-stepwise``: the decoder one token per forward pass and one sentence at a time
  (speculation and packing off), to check that they change nothing (``same_as_stepwise``);
* ``teacher-forced``: one forward pass over prompt + gold answer per sentence (logits only at the
  answer positions): the cost of merely scoring the gold answer, a floor for any decoder.

Answers are read with the formulation's tolerant parser (``Formulation.parse``); entity F1 is
``nerre.metrics.score_entities``. Without ``--adapter`` the base model is used: its F1 is near 0 and it
rarely stops by itself, so the unconstrained methods then get a budget of the gold answer's length
(``--budget auto``) -- they generate about as many tokens as a trained model would.

    python benchmarks/predict_speed.py --limit 16 --threads 1
    python benchmarks/predict_speed.py --adapter runs/conll2003/adapter --limit 200

Writes benchmarks/results/predict_speed.json and predict_speed.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nerre.atomic import write_text
from nerre.decoding import DecodeOptions, DecodeStats, FaithfulDecoder, token_table
from nerre.example import Example
from nerre.formulation import get_formulation
from nerre.loaders import load_examples
from nerre.metrics import score_entities
from nerre.models import DEFAULT_MODEL, load_model, load_tokenizer, resolve_model
from nerre.prompt import PromptBuilder, PromptSettings, prompt_ids
from nerre.schema import Schema

RESULTS_DIR = Path(__file__).resolve().parent / "results"
METHODS = ("generate-b1", "generate-batched", "prompt-lookup", "constrained", "constrained-unscored", "constrained-b1",
           "constrained-stepwise", "teacher-forced")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, help="adapter folder written by `nerre fit` (its settings give the labels)")
    parser.add_argument("--merge", action="store_true", help="merge the LoRA weights into the base model first")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="base model when no adapter is given")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "conll2003.yaml",
                        help="without --adapter: the nerre config whose data.schema/formulation/prompt are used")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "conll2003" / "test.txt")
    parser.add_argument("--format", help="corpus format (default: from the config, else detected)")
    parser.add_argument("--limit", type=int, default=16, help="sentences to decode")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of generate-batched")
    parser.add_argument("--speculate", type=int, default=16, help="most proposed copy tokens per forward pass")
    parser.add_argument("--prompt-lookup", type=int, default=10, help="prompt_lookup_num_tokens")
    parser.add_argument("--budget", choices=("auto", "gold", "default"), default="auto",
                        help="max new tokens of the unconstrained methods: gold answer length + 1, nerre's default "
                             "budget, or auto (gold without an adapter, default with one)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def load(args: argparse.Namespace):
    """(model, tokenizer, formulation, prompts, corpus format, description of the model)."""
    if args.adapter:
        from nerre.adapter import load_adapter

        model, tokenizer, settings = load_adapter(args.adapter)
        if args.merge:
            model = model.merge_and_unload().eval()
        formulation, prompts = settings.build()
        return model, tokenizer, formulation, prompts, args.format, f"{settings.base_model} + {args.adapter}"
    data = yaml.safe_load(args.config.read_text())["data"]
    formulation = get_formulation(data.get("formulation", "tagged"), Schema(**data["schema"]))
    prompts = PromptBuilder(formulation, PromptSettings(**(data.get("prompt") or {})))
    path = resolve_model(args.model)
    model = load_model(path).eval()
    return model, load_tokenizer(path), formulation, prompts, args.format or data.get("format"), args.model


def gold_answer_ids(tokenizer: Any, formulation: Any, example: Example) -> list[int]:
    """The training target of ``example``, as ``ExtractionData.answer_ids`` tokenizes it."""
    return tokenizer(formulation.encode(example), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def run_generate(model, tokenizer, prompts, formulation, examples, batch_size, lookup, budgets, stats):
    """Plain ``generate`` in batches of sentences of similar prompt length; budgets per sentence or None."""
    lengths = [len(prompt_ids(tokenizer, prompts, ex.text)) for ex in examples]
    order = sorted(range(len(examples)), key=lambda i: -lengths[i])
    answers = [""] * len(examples)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        budget = max(budgets[i] for i in rows) if budgets else None
        options = DecodeOptions(constrained=False, batch_size=batch_size, max_new_tokens=budget, prompt_lookup=lookup)
        runner = FaithfulDecoder(model, tokenizer, prompts, formulation, options)
        for i, answer in zip(rows, runner.generate([examples[i] for i in rows])):
            answers[i] = answer
        stats.add(runner.stats)
    return answers


@torch.inference_mode()
def teacher_forced(model, tokenizer, prompts, formulation, examples) -> None:
    """One forward pass per sentence over prompt + gold answer, logits only at the answer positions."""
    for ex in examples:
        prompt, answer = prompt_ids(tokenizer, prompts, ex.text), gold_answer_ids(tokenizer, formulation, ex)
        model(input_ids=torch.tensor([prompt + answer]), logits_to_keep=len(answer) + 1, use_cache=False)


class Method:
    """One way of predicting, timed chunk by chunk; its answers are collected for scoring."""

    def __init__(self, name: str, args, model, tokenizer, formulation, prompts, budgets: dict[int, int] | None):
        self.name, self.args = name, args
        self.model, self.tokenizer, self.formulation, self.prompts = model, tokenizer, formulation, prompts
        self.budgets = budgets
        self.seconds = 0.0
        self.answers: list[str] = []
        self.stats = DecodeStats()
        self.decoder = None
        if name.startswith("constrained"):
            options = {
                "constrained": DecodeOptions(speculate=args.speculate, batch_size=args.batch_size),
                "constrained-unscored": DecodeOptions(speculate=args.speculate, batch_size=args.batch_size, scores=False),
                "constrained-b1": DecodeOptions(speculate=args.speculate, batch_size=1),
                "constrained-stepwise": DecodeOptions(speculate=0, batch_size=1),
            }[name]
            self.decoder = FaithfulDecoder(model, tokenizer, prompts, formulation, options)

    def run(self, examples: list[Example], ids: list[int]) -> None:
        started = time.perf_counter()
        budgets = [self.budgets[i] for i in ids] if self.budgets else None
        common = (self.model, self.tokenizer, self.prompts, self.formulation, examples)
        if self.name == "generate-b1":
            self.answers += run_generate(*common, 1, None, budgets, self.stats)
        elif self.name == "generate-batched":
            self.answers += run_generate(*common, self.args.batch_size, None, budgets, self.stats)
        elif self.name == "prompt-lookup":
            self.answers += run_generate(*common, 1, self.args.prompt_lookup, budgets, self.stats)
        elif self.decoder is not None:
            self.answers += self.decoder.generate(examples)
        else:
            teacher_forced(*common)
        self.seconds += time.perf_counter() - started

    def result(self, examples: list[Example]) -> dict[str, Any]:
        stats = self.decoder.stats if self.decoder is not None else self.stats
        result: dict[str, Any] = {
            "method": self.name,
            "seconds": round(self.seconds, 3),
            "sentences_per_s": round(len(examples) / self.seconds, 3),
            "ms_per_sentence": round(1000 * self.seconds / len(examples), 1),
        }
        if self.answers:
            predictions, each = self.formulation.parse(examples, self.answers)
            defects = sum(each, Counter())
            result.update(
                entity_f1=round(score_entities(examples, predictions).micro.f1, 4),
                defects=sum(defects.values()),
                defect_counts=dict(defects),
                forward_passes=stats.forward_passes,
                answer_tokens=stats.answer_tokens,
                accepted_proposals=f"{stats.accepted_tokens}/{stats.proposed_tokens}" if stats.proposed_tokens else "",
                answers=self.answers,
            )
        return result


def markdown_table(results: list[dict[str, Any]], config: dict[str, Any]) -> str:
    lines = [
        (
            f"Prediction speed: {config['model']}, {config['sentences']} sentences of {config['data']}, "
            f"{config['threads']} torch thread(s), {config['device']}; "
            f"budget of unconstrained methods: {config['budget']}."
        ),
        "",
        "| method | sentences/s | ms/sentence | vs generate-batched | vs teacher-forced | entity F1 | defects | forward passes | accepted/proposed | same as stepwise |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['method']} | {r['sentences_per_s']:.2f} | {r['ms_per_sentence']:.0f} | "
            f"{r.get('speedup_vs_batched', '')} | {r.get('time_vs_teacher_forced', '')} | "
            f"{r.get('entity_f1', '')} | {r.get('defects', '')} | {r.get('forward_passes', '')} | "
            f"{r.get('accepted_proposals', '')} | {r.get('same_as_stepwise', '')} |"
        )
    lines += [
        "",
        (
            "vs generate-batched: sentences/s relative to plain batched generate (higher is better); "
            "vs teacher-forced: time per sentence relative to one forward pass over prompt + gold answer "
            "(lower is better)."
        ),
        (
            f"Not timed: building the token table ({config['token_table_seconds']} s, once per tokenizer) and "
            f"each decoder's setup (prompt-header prefill, check of packed passes: {config['decoder_setup_seconds']} s "
            "for all of them together)."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, formulation, prompts, fmt, model_name = load(args)
    examples = [ex for ex in load_examples(args.data, fmt) if ex.text.strip()][: args.limit + 1]
    warmup, examples = examples[:1], examples[1:]
    # longest prompts first, as nerre's generation loader batches them: chunks of similar lengths
    examples.sort(key=lambda ex: -len(prompt_ids(tokenizer, prompts, ex.text)))
    budget_mode = args.budget if args.budget != "auto" else ("default" if args.adapter else "gold")
    budgets = ({i: len(gold_answer_ids(tokenizer, formulation, ex)) for i, ex in enumerate(examples)}
               if budget_mode == "gold" else None)
    started = time.perf_counter()
    token_table(tokenizer)
    table_seconds = time.perf_counter() - started
    # untimed warm-up of every code path
    run_generate(model, tokenizer, prompts, formulation, warmup, 1, None, [8], DecodeStats())
    FaithfulDecoder(model, tokenizer, prompts, formulation, DecodeOptions(speculate=args.speculate)).generate(warmup * 2)
    methods = [Method(name, args, model, tokenizer, formulation, prompts, budgets) for name in args.methods]
    started = time.perf_counter()
    with torch.inference_mode():
        for method in methods:  # one-time setup of a decoder: prompt-header prefill, check of packed passes
            if method.decoder is not None:
                method.decoder.engine.prepare_prefix([])
                method.decoder.engine.passes.packing_works(tokenizer)
    setup_seconds = time.perf_counter() - started
    for start in range(0, len(examples), args.batch_size):
        chunk = list(range(start, min(start + args.batch_size, len(examples))))
        for method in methods:
            method.run([examples[i] for i in chunk], chunk)
        print(f"{chunk[-1] + 1}/{len(examples)} sentences: "
              + ", ".join(f"{m.name} {m.seconds:.1f}s" for m in methods), flush=True)
    results = [method.result(examples) for method in methods]
    by_method = {r["method"]: r for r in results}
    for r in results:
        if "generate-batched" in by_method:
            r["speedup_vs_batched"] = round(r["sentences_per_s"] / by_method["generate-batched"]["sentences_per_s"], 2)
        if "teacher-forced" in by_method:
            r["time_vs_teacher_forced"] = round(r["seconds"] / by_method["teacher-forced"]["seconds"], 2)
    for name in ("constrained", "constrained-b1"):
        if name in by_method and "constrained-stepwise" in by_method:
            pairs = zip(by_method[name]["answers"], by_method["constrained-stepwise"]["answers"])
            by_method[name]["same_as_stepwise"] = f"{sum(a == b for a, b in pairs)}/{len(examples)}"
    if "constrained" in by_method and "constrained-unscored" in by_method:  # scores cost no decision and no pass
        scored, unscored = by_method["constrained"], by_method["constrained-unscored"]
        pairs = zip(scored["answers"], unscored["answers"])
        scored["same_as_unscored"] = f"{sum(a == b for a, b in pairs)}/{len(examples)}"
        scored["time_vs_unscored"] = round(scored["seconds"] / unscored["seconds"], 3)
    config = {
        "model": model_name,
        "data": str(args.data),
        "sentences": len(examples),
        "threads": torch.get_num_threads(),
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "budget": budget_mode,
        "batch_size": args.batch_size,
        "speculate": args.speculate,
        "prompt_lookup": args.prompt_lookup,
        "token_table_seconds": round(table_seconds, 2),
        "decoder_setup_seconds": round(setup_seconds, 2),
        "torch": torch.__version__,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    report = {"config": config, "results": results}
    write_text(args.output_dir / "predict_speed.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = markdown_table(results, config)
    write_text(args.output_dir / "predict_speed.md", table)
    print(table)
    return results


if __name__ == "__main__":
    main()
