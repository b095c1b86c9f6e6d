"""The precision/recall knob, swept: one decode per bias setting gives the whole score-threshold curve.

For each ``--biases`` value (``DecodeOptions.entity_bias``; with ``--relations`` also ``relation_bias``)
the data is decoded once with scores; every threshold of ``--thresholds`` then keeps the predictions
scoring at least that much (``nerre.decoding.confidence.keep_confident``, no decode) and is evaluated.
Entities are scored span-exact; relations (``--relations``) strict, over the relation-score threshold with
every entity kept.

    python benchmarks/pr_curve.py --adapter conll2003 --data conll2003/test.txt --limit 500 --biases -2 0 2 4
    python benchmarks/pr_curve.py --adapter conll04 --data conll04/conll04_dev.json --limit 500 --relations

Writes ``benchmarks/results/pr_curve-<name>.json`` (every point, the setting with the best F1, the setting
with recall >= ``--target-recall`` and the best precision, where one exists) and ``pr_curve-<name>.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nerre.adapter import DECODING_KNOBS  # noqa: E402
from nerre.atomic import write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: Extractor knobs that decode as the adapter was trained, whatever tuned decoding it carries (sweeps start here)
AS_TRAINED = dict.fromkeys(DECODING_KNOBS, 0.0)
DATA_DIR = Path(os.environ.get("NERRE_DATA_DIR", ROOT.parent / "shared" / "data"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", required=True, help="adapter folder, or the name of a shipped adapter")
    parser.add_argument("--data", required=True, help="gold corpus (relative to $NERRE_DATA_DIR, or a path)")
    parser.add_argument("--format", help="corpus format (detected when omitted)")
    parser.add_argument("--limit", type=int, default=500, help="first N documents (at least 500 for the issue)")
    parser.add_argument("--biases", type=float, nargs="+", default=[0.0], help="entity_bias settings, one decode each")
    parser.add_argument("--relations", action="store_true", help="sweep relations too (relation_bias = the bias)")
    parser.add_argument("--thresholds", type=int, default=101, help="thresholds from 0 to 1, evenly spaced")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--name", help="result name (default: the adapter's name and the data file's)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def gold_examples(data: str, format: str | None, limit: int | None) -> list:
    """The gold documents: ``data`` relative to $NERRE_DATA_DIR (or as given), the first ``limit``."""
    from nerre.loaders import load_examples

    path = Path(data) if Path(data).exists() else DATA_DIR / data
    return load_examples(path, format)[:limit]


def decode(extractor: Any, gold: list, **knobs: float) -> tuple[list, float]:
    """Scored predictions of ``gold``'s texts (their own tokens kept) with these decoding knobs; seconds."""
    from nerre.example import Example

    for name, value in knobs.items():
        setattr(extractor.options, name, value)
    inputs = [Example(ex.text, tokens=ex.tokens, id=ex.id) for ex in gold]
    started = time.perf_counter()
    predictions = [p.example for p in extractor.predict(inputs, progress=True)]
    return predictions, time.perf_counter() - started


def sweep(gold: list, predictions: list, thresholds: list[float], kind: str, symmetric: set[str]) -> list[dict]:
    """Precision, recall and F1 at each threshold (entities: entity scores; relations: relation scores)."""
    from nerre.decoding.confidence import keep_confident
    from nerre.metrics import evaluate

    points = []
    for threshold in thresholds:
        kept = copy.deepcopy(predictions)
        for example in kept:
            keep_confident(example, threshold if kind == "entities" else 0.0, threshold if kind == "relations" else 0.0)
        scores = evaluate(gold, kept, symmetric=symmetric)
        scores = scores["entities"] if kind == "entities" else scores["relations"]["strict"]
        points.append({"threshold": round(threshold, 4), "precision": scores["precision"], "recall": scores["recall"],
                       "f1": scores["f1"], "predicted": scores["predicted"]})
    return points


def choose(curves: dict[str, list[dict]], target: float) -> tuple[dict | None, dict | None]:
    """The setting with the best F1, and the one with recall >= ``target`` and the best precision (None if none)."""
    points = [{"bias": float(bias), **point} for bias, curve in curves.items() for point in curve]
    best = max(points, key=lambda p: (p["f1"], p["precision"]), default=None)
    reaching = [p for p in points if p["recall"] >= target]
    return best, max(reaching, key=lambda p: (p["precision"], p["threshold"]), default=None)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("entities", "relations") if k in result["curves"]]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 5), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for bias, curve in result["curves"][kind].items():
            shown = [p for p in curve if p["predicted"]]  # precision is undefined where nothing is predicted
            ax.plot([p["recall"] for p in shown], [p["precision"] for p in shown], marker=".", markersize=3,
                    label=f"bias {float(bias):+g}" + ("" if shown else " (predicts nothing)"))
        for key, marker, label in (("best_f1", "*", "best F1"), ("target_recall", "o", "recall target")):
            point = result[kind].get(key)
            if point:
                ax.plot(point["recall"], point["precision"], marker, markersize=12, color="black", fillstyle="none",
                        label=f"{label}: bias {point['bias']:+g}, threshold {point['threshold']:g}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{result['name']}: {kind}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from nerre.predict import Extractor

    if args.threads:
        torch.set_num_threads(args.threads)
    gold = gold_examples(args.data, args.format, args.limit)
    extractor = Extractor.load(args.adapter, batch_size=args.batch_size, **AS_TRAINED)
    symmetric = extractor.formulation.schema.symmetric_relations
    thresholds = [k / (args.thresholds - 1) for k in range(args.thresholds)]
    name = args.name or f"{Path(args.adapter).name}-{Path(args.data).stem}"
    kinds = ["entities", "relations"] if args.relations else ["entities"]
    curves: dict[str, dict[str, list]] = {kind: {} for kind in kinds}
    seconds = {}
    for bias in args.biases:
        knobs = {"entity_bias": bias} | ({"relation_bias": bias} if args.relations else {})
        predictions, seconds[str(bias)] = decode(extractor, gold, **knobs)
        for kind in kinds:
            curves[kind][str(bias)] = sweep(gold, predictions, thresholds, kind, symmetric)
        print(f"bias {bias:+g}: decoded {len(gold)} documents in {seconds[str(bias)]:.1f}s", flush=True)
    result: dict[str, Any] = {
        "name": name,
        "command": " ".join(["python", "benchmarks/pr_curve.py", *(argv if argv is not None else sys.argv[1:])]),
        "adapter": str(args.adapter),
        "model_version": extractor.model_version,
        "data": str(args.data),
        "documents": len(gold),
        "biases": args.biases,
        "decode_seconds": seconds,
        "curves": curves,
    }
    for kind in kinds:
        best, target = choose(curves[kind], args.target_recall)
        result[kind] = {"best_f1": best, "target_recall": target, "target": args.target_recall}
    args.results.mkdir(parents=True, exist_ok=True)
    write_text(args.results / f"pr_curve-{name}.json", json.dumps(result, indent=1) + "\n")
    plot(result, args.results / f"pr_curve-{name}.png")
    for kind in kinds:
        print(f"{kind}: best F1 {result[kind]['best_f1']}; recall >= {args.target_recall}: "
              f"{result[kind]['target_recall'] or 'none'}")
    return result


if __name__ == "__main__":
    main()
