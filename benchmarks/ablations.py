"""The practitioners' open questions, one switch each, on one reduced budget and seed.

    python benchmarks/ablations.py --config configs/conll2003.yaml --max-steps 250 \
        --train-examples 2000 --test-limit 500

Each variant is one ``benchmarks/run.py`` run with one config override:

- ``baseline``: inline tags, loss on the answer only, label descriptions in the prompt, constrained
  decoding (and, from the same adapter, unconstrained decoding: F1 and hallucination counts);
- ``json``: JSON records with character offsets instead of inline tags;
- ``loss-all``: loss on the whole sequence, prompt included;
- ``no-descriptions``: label names only in the prompt.

Every run reports recall on test mentions seen and unseen in training. The comparison goes to
``benchmarks/results/ablations/comparison.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from results_table import pct
from run import RESULTS, run_benchmark

VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "json": ["--data.formulation", "json"],
    "no-descriptions": ["--data.prompt.describe_labels", "false"],
    "loss-all": ["--data.loss_on", "all"],  # the slowest: the LM head runs at every position
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--train-examples", type=int, help="a seeded random subset of the training data")
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="run only these variants")
    args, extra = parser.parse_known_args()
    results = RESULTS / "ablations"
    for name, override in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        budget = ["--data.max_train_examples", str(args.train_examples)] if args.train_examples else []
        run_benchmark(args.config, name, args.max_steps, None, budget + override + extra,
                      args.test_limit, compare_unconstrained=name == "baseline", results=results)
        write_comparison(results)  # after every variant, so an interrupted run keeps a table


def write_comparison(results: Path) -> None:
    """Compare every variant whose result is on disk, in the order of ``VARIANTS``."""
    rows = {name: json.loads((results / name / "result.json").read_text())
            for name in VARIANTS if (results / name / "result.json").is_file()}
    table = {}
    for name, r in rows.items():
        table[name] = {
            "entity_f1": r["entities"]["f1"],
            "relation_f1_strict": r["relations"]["strict"]["f1"],
            "recall_seen": r["recall_seen_unseen"]["seen"]["recall"],
            "recall_unseen": r["recall_seen_unseen"]["unseen"]["recall"],
            "defects": sum(r["defects"].values()),
            "hallucinated": r["defects"].get("hallucinated_entity", 0),
            "sentences_per_s": r["predict_sentences_per_s"],
        }
        if "unconstrained" in r:
            u = r["unconstrained"]
            table[f"{name} (unconstrained)"] = {
                "entity_f1": u["entity_f1"], "relation_f1_strict": u["relation_f1_strict"],
                "recall_seen": None, "recall_unseen": None, "defects": sum(u["defects"].values()),
                "hallucinated": u["defects"].get("hallucinated_entity", 0),
                "sentences_per_s": u["predict_sentences_per_s"],
            }
    (results / "comparison.json").write_text(json.dumps(table, indent=2) + "\n")
    lines = ["| variant | entity F1 | relation F1 | recall seen | recall unseen | defects | hallucinated | sent/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in table.items():
        lines.append(f"| {name} | {pct(t['entity_f1'])} | {pct(t['relation_f1_strict'])} | {pct(t['recall_seen'])} | "
                     f"{pct(t['recall_unseen'])} | {t['defects']} | {t['hallucinated']} | {t['sentences_per_s']:.2f} |")
    (results / "comparison.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 4))
    names = list(table)
    axis.bar(names, [100 * table[n]["entity_f1"] for n in names], color="tab:blue")
    axis.set_ylabel("test entity F1")
    axis.set_ylim(0, 100)
    axis.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(results / "comparison.png", dpi=120)
    plt.close(fig)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
