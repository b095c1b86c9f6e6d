"""Does ranking by uncertainty pay? A simulated annotation loop: uncertainty against random, same budget and seed.

Start from ``--start`` training documents drawn at random (``--seed``) from the config's training split and
fit an adapter on them. Then, for ``--rounds`` rounds, each arm adds ``--add`` documents from the rest of the
training split (gold labels stand for the annotator's corrections):

* ``uncertainty``: the arm's latest adapter predicts a pool (``--pool`` documents drawn at random from the
  arm's unlabelled rest with the round's seed, to bound CPU time) and its least confident documents (lowest
  document score, what ``nerre predict --rank uncertainty`` writes first) are added;
* ``random``: documents drawn at random from a pool drawn the same way.

Every fit starts from the base model with the same config, step budget (``--max-steps``: the config's epoch
limit is lifted) and seed, and keeps its last step's adapter: the fits get no dev data, so nothing is selected on the
held-back set. Both arms are scored on that same set (``--score-on``: the config's dev split by default) after
every round.

    python benchmarks/active_learning.py --config configs/conll04.yaml --start 100 --add 100 --rounds 2 \\
        --max-steps 120 --pool 300 --seed 0

Further arguments go to ``nerre fit`` unchanged. Writes ``benchmarks/results/active_learning-<name>.json``
(entity and strict relation F1 per arm and round, the documents chosen, and what the labelled set and each round's
additions hold: tokens, gold entities, gold relations, the annotation cost to compare arms by) and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

from pr_curve import DATA_DIR, RESULTS, ROOT

sys.path.insert(0, str(ROOT))

from nerre.atomic import write_text  # noqa: E402


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--start", type=int, default=100, help="training documents to start from")
    parser.add_argument("--add", type=int, default=100, help="documents each arm adds per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=400, help="pool documents the uncertainty arm predicts per round")
    parser.add_argument("--max-steps", type=int, default=300, help="the step budget of every fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score-on", choices=("val", "test"), default="val", help="the held-back split")
    parser.add_argument("--score-limit", type=int, help="first N held-back documents")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--name", help="result name (default: the config's)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_known_args(argv)


def split(config: Path, data_dir: Path, name: str) -> list:
    """The examples of the config's ``data.<name>`` split."""
    import yaml

    from nerre.loaders import load_examples

    data = yaml.safe_load(config.read_text())["data"]
    return load_examples(data_dir / data[name], data.get("format"), data.get("reader_options"))


def fit(config: Path, train: list, folder: Path, args: argparse.Namespace, extra: list[str]) -> tuple[Path, int]:
    """Fit an adapter on ``train`` (from the base model, the same budget and seed every time): its folder, the steps trained."""
    from nerre.cli import run
    from nerre.loaders import write_jsonl

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_jsonl(train, folder / "train.jsonl")
    cli = run(["fit", "--config", str(config), "--data.data_dir", str(args.data_dir),
               "--data.train", str(folder / "train.jsonl"), "--data.format", "jsonl",
               "--trainer.max_steps", str(args.max_steps), "--trainer.max_epochs", "-1",
               "--data.val", "null", "--data.test", "null", "--trainer.default_root_dir", str(folder),
               "--trainer.logger.init_args.save_dir", str(folder), "--trainer.enable_progress_bar", "false",
               "--seed_everything", str(args.seed), *extra])
    return Path(cli.trainer.log_dir) / "adapter", cli.trainer.global_step


def score(adapter: Path, heldout: list, batch_size: int) -> dict[str, Any]:
    """Entity and strict relation P/R/F1 of ``adapter`` on the held-back set."""
    from nerre.example import Example
    from nerre.metrics import evaluate
    from nerre.predict import Extractor

    extractor = Extractor.load(adapter, batch_size=batch_size)
    inputs = [Example(ex.text, tokens=ex.tokens, id=ex.id) for ex in heldout]
    predictions = [p.example for p in extractor.predict(inputs)]
    scores = evaluate(heldout, predictions, symmetric=extractor.formulation.schema.symmetric_relations)
    return {"entities": scores["entities"], "relations": scores["relations"]["strict"]}


def least_confident(adapter: Path, pool: list, n: int, batch_size: int) -> list:
    """The ``n`` documents of ``pool`` whose predictions are least confident (nerre predict --rank uncertainty)."""
    from nerre.example import Example
    from nerre.predict import Extractor, rank_predictions

    extractor = Extractor.load(adapter, batch_size=batch_size)
    by_id = {ex.id: ex for ex in pool}
    predictions = list(extractor.predict([Example(ex.text, tokens=ex.tokens, id=ex.id) for ex in pool]))
    return [by_id[p.example.id] for p in rank_predictions(predictions, "uncertainty", n)]


def annotated(examples: list) -> dict[str, int]:
    """What annotating ``examples`` costs: their tokens, gold entities and gold relations."""
    return {"tokens": sum(len(ex.tokens) for ex in examples), "entities": sum(len(ex.entities) for ex in examples),
            "relations": sum(len(ex.relations) for ex in examples)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, kind in zip(axes, ("entities", "relations")):
        for arm in ("uncertainty", "random"):
            rows = result["arms"][arm]
            ax.plot([r["documents"] for r in rows], [r["scores"][kind]["f1"] for r in rows], "o-", label=arm)
        ax.set_xlabel("training documents")
        ax.set_ylabel(f"{kind} F1 ({result['score_on']})")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{result['name']}: active learning, uncertainty vs random")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args, extra = parse_args(argv)
    name = args.name or f"{args.config.stem}-seed{args.seed}"
    out = args.results / f"active_learning-{name}"
    train = split(args.config, args.data_dir, "train")
    for k, ex in enumerate(train):  # ids pick documents out of the pool: make them unique
        ex.id = f"{ex.id}#{k}"
    heldout = split(args.config, args.data_dir, args.score_on)[: args.score_limit]
    rng = random.Random(args.seed)
    order = rng.sample(range(len(train)), len(train))
    start = [train[i] for i in order[: args.start]]
    rest = [train[i] for i in order[args.start :]]
    adapter, steps = fit(args.config, start, out / "round0", args, extra)
    first = {"round": 0, "documents": len(start), "labelled": annotated(start), "steps": steps,
             "scores": score(adapter, heldout, args.batch_size)}
    result: dict[str, Any] = {
        "name": name,
        "command": " ".join(["python", "benchmarks/active_learning.py", *(argv if argv is not None else sys.argv[1:])]),
        "config": str(args.config), "seed": args.seed, "start": args.start, "add": args.add, "rounds": args.rounds,
        "pool": args.pool, "max_steps": args.max_steps, "score_on": args.score_on, "heldout": len(heldout),
        "arms": {"uncertainty": [first], "random": [first]},
    }
    state = {arm: (list(start), list(rest), adapter) for arm in ("uncertainty", "random")}
    for round_ in range(1, args.rounds + 1):
        for arm in ("uncertainty", "random"):
            labelled, remaining, previous = state[arm]
            pool = random.Random(args.seed * 1000 + round_).sample(remaining, min(args.pool, len(remaining)))
            if arm == "uncertainty":
                chosen = least_confident(previous, pool, args.add, args.batch_size)
            else:
                chosen = random.Random(args.seed + round_).sample(pool, min(args.add, len(pool)))
            taken = {ex.id for ex in chosen}
            labelled = labelled + chosen
            remaining = [ex for ex in remaining if ex.id not in taken]
            adapter, steps = fit(args.config, labelled, out / f"round{round_}-{arm}", args, extra)
            result["arms"][arm].append({"round": round_, "documents": len(labelled), "labelled": annotated(labelled),
                                        "steps": steps, "added": sorted(taken), "added_size": annotated(chosen),
                                        "scores": score(adapter, heldout, args.batch_size)})
            state[arm] = (labelled, remaining, adapter)
            print(f"round {round_} {arm}: {len(labelled)} documents, entity F1 "
                  f"{result['arms'][arm][-1]['scores']['entities']['f1']:.4f}", flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text(args.results / f"active_learning-{name}.json", json.dumps(result, indent=1) + "\n")
    plot(result, args.results / f"active_learning-{name}.png")
    return result


if __name__ == "__main__":
    main()
