"""The practitioners' open questions, one switch each, on one reduced budget and seed.

    python benchmarks/ablations.py --config configs/conll2003.yaml --max-steps 150 \
        --train-examples 1200 --test-limit 250

Each variant is one ``benchmarks/run.py`` run with one config override:

- ``baseline``: inline tags, loss on the answer only, label descriptions in the prompt, constrained
  decoding (and, from the same adapter, unconstrained decoding: F1 and hallucination counts);
- ``json``: JSON records with character offsets instead of inline tags;
- ``bio``: a ``token TAG`` line per input token (IOB2) instead of inline tags (free generation: it has
  no constrained decoder yet);
- ``no-descriptions``: label names only in the prompt;
- ``loss-all``: loss on the whole sequence, prompt included.

Every run reports recall on test mentions seen and unseen in training. After each variant the
comparison of all results on disk goes to ``benchmarks/results/ablations/comparison.{json,md,png}``;
``benchmarks/results_table.py`` puts it in the README.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from results_table import pct, rate
from run import RESULTS, run_benchmark

VARIANTS: dict[str, tuple[list[str], str]] = {  # name: (the override, what it changes)
    "baseline": ([], "inline tags, loss on the answer, label descriptions, constrained decoding"),
    "json": (["--data.formulation", "json"], "JSON records with character offsets instead of inline tags"),
    "bio": (["--data.formulation", "bio"], "a token TAG line per input token (IOB2) instead of inline tags"),
    "no-descriptions": (["--data.prompt.describe_labels", "false"], "label names only in the prompt"),
    "loss-all": (["--data.loss_on", "all"], "loss on the whole sequence, prompt included"),  # the slowest
}
UNCONSTRAINED = "baseline, unconstrained"
MISPLACED = ("hallucinated_entity", "wrong_offsets", "text_drift", "token_drift")  # output that does not match the input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--train-examples", type=int, help="a seeded random subset of the training data")
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="run only these variants")
    args, extra = parser.parse_known_args()
    results = RESULTS / "ablations"
    for name, (override, _) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        budget = ["--data.max_train_examples", str(args.train_examples)] if args.train_examples else []
        run_benchmark(args.config, name, args.max_steps, None, budget + override + extra,
                      args.test_limit, compare_unconstrained=name == "baseline", results=results)
        write_comparison(results)  # after every variant, so an interrupted run keeps a table


def comparison(results: Path) -> dict[str, dict]:
    """One row per variant whose ``result.json`` is under ``results``, in the order of ``VARIANTS``;
    the baseline's unconstrained decoding (same adapter) is a row of its own."""
    table = {}
    for name, (override, change) in VARIANTS.items():
        path = results / name / "result.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        runs = [(name, " ".join(override) or "none", change, r)]
        if "unconstrained" in r:
            runs.append((UNCONSTRAINED, "--constrained false", "free generation, read by the tolerant parser",
                         r["unconstrained"]))
        for row, flag, what, scores in runs:
            strict = scores["relations"]["strict"]
            table[row] = {
                "override": flag,
                "change": what,
                "entities": {k: scores["entities"][k] for k in ("precision", "recall", "f1")},
                "relation_f1_strict": strict["f1"] if strict["gold"] else None,
                "recall_seen": scores["recall_seen_unseen"]["seen"]["recall"],
                "recall_unseen": scores["recall_seen_unseen"]["unseen"]["recall"],
                "defects": sum(scores["defects"].values()),
                "misplaced": sum(scores["defects"].get(kind, 0) for kind in MISPLACED),
                "train_tokens_per_s": r["train_tokens_per_s"],
                "predict_sentences_per_s": scores["predict_sentences_per_s"],
                "train_examples": r["train_examples"], "steps": r["steps"], "test_examples": r["test_examples"],
                "seed": r["seed"], "git_commit": r["git_commit"], "command": r["command"],
            }
    return table


def markdown(table: dict[str, dict]) -> str:
    """The comparison as a Markdown table."""
    relations = any(t["relation_f1_strict"] is not None for t in table.values())
    lines = ["| variant | override | entity P / R / F1 |" + (" relation F1 |" if relations else "") +
             " recall seen / unseen | defects | hallucinated or misplaced | train tok/s | predict sent/s |",
             "|---|---|---|" + ("---:|" if relations else "") + "---|---:|---:|---:|---:|"]
    for name, t in table.items():
        e = t["entities"]
        lines.append(f"| {name} | `{t['override']}` | {pct(e['precision'])} / {pct(e['recall'])} / {pct(e['f1'])} |" +
                     (f" {pct(t['relation_f1_strict'])} |" if relations else "") +
                     f" {pct(t['recall_seen'])} / {pct(t['recall_unseen'])} | {t['defects']} | {t['misplaced']} | "
                     f"{rate(t['train_tokens_per_s'])} | {t['predict_sentences_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def write_comparison(results: Path) -> None:
    """``comparison.json``, ``comparison.md`` and ``comparison.png`` under ``results``."""
    table = comparison(results)
    (results / "comparison.json").write_text(json.dumps(table, indent=2) + "\n")
    (results / "comparison.md").write_text(markdown(table))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    x = range(len(names))
    fig, axis = plt.subplots(figsize=(8, 4))
    axis.bar([i - 0.2 for i in x], [100 * table[n]["entities"]["f1"] for n in names], 0.4, label="entity F1")
    axis.bar([i + 0.2 for i in x], [100 * table[n]["recall_unseen"] for n in names], 0.4,
             label="recall on unseen mentions")
    axis.set_xticks(list(x), names, rotation=15)
    axis.set_ylabel("test score (%)")
    axis.set_ylim(0, 100)
    axis.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(results / "comparison.png", dpi=120)
    plt.close(fig)
    print(markdown(table))


if __name__ == "__main__":
    main()
