"""Cross-validation the way ADE's literature reports it: one ``benchmarks/run.py`` per fold, then the macro
average over the folds (SpERT's convention: the mean of each fold's F1) with the micro average beside it
(the counts of all folds pooled).

    # the 10 folds of ADE, each with the same training budget (hours on a 2-core CPU; minutes on a GPU)
    python benchmarks/folds.py --config configs/ade.yaml --name ade --folds 0 1 2 3 4 5 6 7 8 9 --max-time 00:01:00:00
    # only summarise the folds already run (benchmarks/results/ade-fold0-cpu, ...)
    python benchmarks/folds.py --name ade --runs ade-fold0-cpu

Fold k trains on ``ade/ade_split_k_train.json`` and tests on ``ade/ade_split_k_test.json`` (``--pattern``); its
run is ``benchmarks/results/<name>-fold<k>/``. Any further arguments go to ``run.py`` (and so to ``nerre fit``).
Writes ``benchmarks/results/folds/<name>.json`` and ``.md``: per fold and averaged, entity F1, strict and
boundaries relation F1, and how many of the folds the average holds (an average of fewer than all folds is
labelled so; it is not the published protocol's figure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT

sys.path.insert(0, str(ROOT))

from nerre.atomic import write_text  # noqa: E402
from nerre.metrics import PRF  # noqa: E402

SCORES = (("entities", ("entities",)), ("relations strict", ("relations", "strict")),
          ("relations boundaries", ("relations", "boundaries")))


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the summary's name, and the runs' prefix (NAME-foldK)")
    parser.add_argument("--config", type=Path, help="the fit config (needed to run folds)")
    parser.add_argument("--folds", type=int, nargs="*", default=[], help="folds to run now")
    parser.add_argument("--runs", nargs="*", default=[], help="result folders already run, to summarise too")
    parser.add_argument("--total-folds", type=int, default=10, help="folds of the protocol")
    parser.add_argument("--pattern", default="ade/ade_split_{k}_{split}.json", help="fold files under the data folder")
    return parser.parse_known_args(argv)


def run_fold(args: argparse.Namespace, k: int, extra: list[str]) -> str:
    """Train and test fold ``k`` with ``run.py``; the folder name."""
    name = f"{args.name}-fold{k}"
    config = os.path.relpath(args.config.resolve(), ROOT)  # run from the repository: the command its result records
    command = [sys.executable, "benchmarks/run.py", "--config", config, "--name", name,
               "--data.train", args.pattern.format(k=k, split="train"),
               "--data.test", args.pattern.format(k=k, split="test"), *extra]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    return name


def summarise(names: list[str], total_folds: int) -> dict[str, Any]:
    """Per fold and averaged scores of the result folders ``names``."""
    folds, pooled = [], {label: {"gold": 0, "predicted": 0, "correct": 0} for label, _ in SCORES}
    for name in names:
        result = json.loads((RESULTS / name / "result.json").read_text())
        row: dict[str, Any] = {"run": name, "command": result["command"], "steps": result["steps"],
                               "fit_minutes": round(result["fit_seconds"] / 60, 1),
                               "test": [f for f in result["data"] if "test" in f]}
        for label, keys in SCORES:
            scores = result
            for key in keys:
                scores = scores[key]
            row[label] = round(100 * scores["f1"], 2)
            for count in ("gold", "predicted", "correct"):
                pooled[label][count] += scores[count]
        folds.append(row)
    macro = {label: round(sum(f[label] for f in folds) / len(folds), 2) for label, _ in SCORES} if folds else {}
    micro = {label: round(100 * PRF.from_counts(**counts).f1, 2) for label, counts in pooled.items()}
    return {"folds": folds, "macro": macro, "micro": micro, "folds_run": len(folds), "total_folds": total_folds}


def markdown(name: str, summary: dict[str, Any]) -> str:
    n, total = summary["folds_run"], summary["total_folds"]
    lines = [f"# {name}: {n} of {total} folds", ""]
    if n < total:
        lines += [f"Only {n} of the protocol's {total} folds: the averages below are not the published protocol's "
                  "figure (the macro average over all folds); they are what this budget ran.", ""]
    lines += ["| run | steps | fit min | entity F1 | relation F1 strict | relation F1 boundaries |",
              "|---|---:|---:|---:|---:|---:|"]
    for f in summary["folds"]:
        lines.append(f"| {f['run']} | {f['steps']} | {f['fit_minutes']} | {f['entities']:.2f} | "
                     f"{f['relations strict']:.2f} | {f['relations boundaries']:.2f} |")
    for average in ("macro", "micro"):
        s = summary[average]
        if s:
            lines.append(f"| **{average} average** | | | {s['entities']:.2f} | {s['relations strict']:.2f} | "
                         f"{s['relations boundaries']:.2f} |")
    lines += ["", "Macro: the mean of the folds' F1 (SpERT's convention for ADE); micro: F1 of all folds' counts pooled.",
              "", "Commands:", ""] + [f"- `{f['command']}`" for f in summary["folds"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, extra = parse_args(argv)
    if args.folds and args.config is None:
        raise SystemExit("--folds runs training: name the fit config with --config")
    names = list(args.runs) + [run_fold(args, k, extra) for k in args.folds]
    if not names:
        raise SystemExit("nothing to summarise: give --folds to run or --runs already run")
    summary = summarise(names, args.total_folds)
    out = RESULTS / "folds"
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / f"{args.name}.json", json.dumps(summary, indent=2) + "\n")
    table = markdown(args.name, summary)
    write_text(out / f"{args.name}.md", table)
    print(table)
    return summary


if __name__ == "__main__":
    main()
