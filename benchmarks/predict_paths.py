"""Prediction paths side by side in one run: today's path (the LoRA adapter on float32 weights) beside the
merged adapter and bfloat16 weights, each through ``Extractor.load`` as ``nerre predict`` uses it.

Paths (``--paths``), each ``{lora|merged}-{32|bf16}``, with ``-bN`` to decode N texts together instead of
``--batch-size`` (packed passes of more tokens):

* ``lora-32``: the adapter unmerged, float32 (``--precision 32-true``): the path before this benchmark;
* ``merged-32``: the LoRA weights added into the base weights (``--merge``), float32;
* ``lora-bf16`` and ``merged-bf16``: the same in bfloat16 (``--precision bf16-true``; merged in float32,
  then cast).

The sentences are taken in chunks of the largest batch size and every path decodes a chunk before the next chunk
starts, so that a change in the load of the machine affects all paths alike (one untimed warm-up chunk first).
For each path: sentences/s, entity F1, strict relation F1 (where the data has relations), parser defects,
predictions equal to the first path's (entities and relations of each text), and the FLOP rate: 2 x body
parameters per token fed to the body (attention left out), against the machine's matmul peak in that dtype,
measured here with a 2048^3 matmul.

    python benchmarks/predict_paths.py --adapter conll2003 --limit 200 --threads 2
    python benchmarks/predict_paths.py --adapter conll04 --data conll04/conll04_test.json --limit 288 --threads 2

Writes benchmarks/results/predict_paths/<name>.json and .md (``--name``, default the adapter and data names).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pr_curve import gold_examples
from profile_predict import body_parameters

from nerre.atomic import write_text
from nerre.decoding.passes import ModelPasses
from nerre.metrics import score_entities, score_relations
from nerre.models import cpu_has_native_bf16
from nerre.predict import Extractor

RESULTS_DIR = Path(__file__).resolve().parent / "results" / "predict_paths"
PATHS = ("lora-32", "merged-32", "lora-bf16", "merged-bf16")
PATH_FORMAT = re.compile(r"(lora|merged)-(32|bf16)(?:-b(\d+))?")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", required=True, help="adapter folder, or the name of a shipped adapter")
    parser.add_argument("--data", default="conll2003/test.txt", help="corpus file (relative to NERRE_DATA_DIR or a path)")
    parser.add_argument("--format", help="corpus format (detected when omitted)")
    parser.add_argument("--limit", type=int, default=200, help="sentences to time (after the warm-up chunk)")
    parser.add_argument("--batch-size", type=int, default=8, help="texts decoded together (nerre predict's default)")
    parser.add_argument("--paths", nargs="+", default=list(PATHS),
                        help="{lora|merged}-{32|bf16}[-bN]; the first is the reference")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--name", help="output file stem (default: ADAPTER-DATA)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def matmul_peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """This machine's matmul rate in ``dtype`` (GFLOP/s), the best of ``repeats`` n x n x n products."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


class Path_:
    """One path: its extractor, time, predictions and the tokens it fed to the body."""

    def __init__(self, name: str, adapter: str, batch_size: int):
        self.name = name
        match = PATH_FORMAT.fullmatch(name)
        if match is None:
            raise SystemExit(f"--paths {name}: write {{lora|merged}}-{{32|bf16}}[-bN], e.g. merged-bf16-b32")
        merge, precision, batch = match.groups()
        self.batch_size = int(batch or batch_size)
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.extractor = Extractor.load(adapter, merge=merge == "merged", batch_size=self.batch_size,
                                        precision="bf16-true" if precision == "bf16" else "32-true")
        self.seconds, self.tokens = 0.0, 0
        self.predictions: list[Any] = []
        self.body_parameters = body_parameters(self.extractor)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = [Path_(name, args.adapter, args.batch_size) for name in args.paths]
    chunk_size = max(path.batch_size for path in paths)
    examples = [ex for ex in gold_examples(args.data, args.format, None) if ex.text.strip()][: args.limit + chunk_size]
    warmup, examples = examples[:chunk_size], examples[chunk_size:]

    current: list[Path_] = []
    original_run = ModelPasses.run

    def counted_run(self: ModelPasses, caches: Any, inputs: list[list[int]], packed: bool) -> Any:
        if current:
            current[0].tokens += sum(len(ids) for ids in inputs)
        return original_run(self, caches, inputs, packed)

    ModelPasses.run = counted_run
    try:
        for path in paths:  # untimed: prompt-header prefill, packed-pass check, first-call costs
            list(path.extractor.predict(warmup))
        for start in range(0, len(examples), chunk_size):
            chunk = examples[start : start + chunk_size]
            for path in paths:
                current[:] = [path]
                started = time.perf_counter()
                path.predictions += list(path.extractor.predict(chunk))
                path.seconds += time.perf_counter() - started
            print(f"{start + len(chunk)}/{len(examples)}: "
                  + ", ".join(f"{p.name} {p.seconds:.1f}s" for p in paths), flush=True)
    finally:
        ModelPasses.run = original_run
        current.clear()

    peaks = {dtype: matmul_peak_gflops(dtype) for dtype in {p.dtype for p in paths}}
    has_relations = any(ex.relations for ex in examples)
    symmetric = paths[0].extractor.formulation.schema.symmetric_relations if has_relations else ()
    reference = [(p.example.entities, p.example.relations) for p in paths[0].predictions]
    rows = []
    for path in paths:
        predicted = [p.example for p in path.predictions]
        gflops = 2 * path.body_parameters * path.tokens / path.seconds / 1e9
        rows.append({
            "path": path.name,
            "sentences_per_s": round(len(examples) / path.seconds, 3),
            "speedup": round(paths[0].seconds / path.seconds, 2),
            "entity_f1": round(100 * score_entities(examples, predicted).micro.f1, 2),
            "relation_f1": round(100 * score_relations(examples, predicted, "strict", symmetric).micro.f1, 2)
            if has_relations else None,
            "defects": sum(sum(p.defects.values()) for p in path.predictions),
            "same_as_first": sum((p.example.entities, p.example.relations) == r
                                 for p, r in zip(path.predictions, reference)),
            "body_tokens": path.tokens,
            "gflops": round(gflops, 1),
            "peak_gflops": round(peaks[path.dtype], 1),
            "peak_share": round(gflops / peaks[path.dtype], 3),
            "seconds": round(path.seconds, 2),
        })
    config = {
        "adapter": args.adapter, "data": str(args.data), "sentences": len(examples), "batch_size": chunk_size,
        "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end",
        "torch": torch.__version__,
        "command": "python benchmarks/predict_paths.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    report = {"config": config, "rows": rows}
    name = args.name or f"{Path(str(args.adapter)).name}-{Path(args.data).stem}"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_text(args.output_dir / f"{name}.json", json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    write_text(args.output_dir / f"{name}.md", table)
    print(table)
    return report


def markdown(report: dict[str, Any]) -> str:
    config, rows = report["config"], report["rows"]
    lines = [
        f"Prediction paths: adapter `{config['adapter']}`, {config['sentences']} sentences of `{config['data']}`, "
        f"chunks of {config['batch_size']}, {config['threads']} torch threads, {config['machine']} (native bf16: "
        f"{config['native_bf16']}), torch {config['torch']}.",
        "",
        f"`{config['command']}`",
        "",
        "| path | sentences/s | vs first | entity F1 | relation F1 (strict) | defects | same as first | GFLOP/s | "
        "matmul peak | share of peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        relation = "" if r["relation_f1"] is None else f"{r['relation_f1']:.2f}"
        lines.append(f"| {r['path']} | {r['sentences_per_s']:.2f} | {r['speedup']:.2f}x | {r['entity_f1']:.2f} | "
                     f"{relation} | {r['defects']} | {r['same_as_first']}/{config['sentences']} | {r['gflops']} | "
                     f"{r['peak_gflops']} | {100 * r['peak_share']:.0f}% |")
    lines += ["", "GFLOP/s: 2 x body parameters per token fed to the body over the path's wall time (attention, "
              "LM head and decoding bookkeeping left out, so it is a floor). Matmul peak: a 2048^3 matmul in the "
              "path's dtype on this machine."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
