"""A run's decoding knobs chosen on dev, then its test split decoded once with them (no training).

    python benchmarks/tune_decoding.py --run scierc-cpu-2h --metric boundaries \\
        --entity-biases 0 1 --relation-biases 0 1 2

For a folder of ``benchmarks/run.py`` (its adapter under ``run/``, or ``--adapter``), each pair of
``--entity-biases`` x ``--relation-biases`` (:class:`nerre.decoding.DecodeOptions`' ``entity_bias`` and
``relation_bias``) decodes the run's dev split once, with scores; each relation-score threshold of
``--thresholds`` (``min_relation_score``) is then applied without decoding. The setting with the best dev
relation F1 (``--metric``: strict or boundaries; on a tie, the first in the order the grid lists) decodes the
test split, scored as ``run.py`` scores it. The test set plays no part in the choice; a run trained on
train+dev has no dev set left to tune on and is refused.

Writes ``benchmarks/results/<run>-dev-tuned/``: ``result.json`` (the run's, with the test scores, defects and
prediction time of the chosen setting; ``decoding``: the setting; ``dev_grid``: every setting's dev scores;
``tuned_from``: the run), ``result.md``, ``breakdown.json``/``.md`` and ``predictions.jsonl``. The results
tables label the row's protocol with the setting. ``--save`` also writes the setting into the adapter's
``nerre.json`` (``decoding``), so that ``nerre predict``, ``nerre serve`` and the spaCy component decode with it
unless told otherwise (``ship_adapter.py`` ships a tuned run's adapter only so saved).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from breakdown import _files, run_breakdown
from common import RESULTS, run_adapter
from pr_curve import AS_TRAINED, decode
from run import git_commit, markdown, predict_split

from nerre.adapter import update_settings
from nerre.atomic import write_text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run folder name under --results (run.py's)")
    parser.add_argument("--adapter", type=Path, help="the run's adapter folder (default: the one under its run/)")
    parser.add_argument("--metric", choices=("strict", "boundaries"), default="strict",
                        help="the dev relation F1 to maximise")
    parser.add_argument("--entity-biases", type=float, nargs="+", default=[0.0])
    parser.add_argument("--relation-biases", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
                        help="relation-score thresholds tried on each decode")
    parser.add_argument("--dev-limit", type=int, help="tune on the first N dev examples only")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, help="the data folder (default: the run's, else $NERRE_DATA_DIR)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--save", action="store_true",
                        help="write the chosen setting into the adapter's nerre.json (its default decoding)")
    return parser.parse_args(argv)


def dev_grid(extractor: Any, dev: list, entity_biases: list[float], relation_biases: list[float],
             thresholds: list[float]) -> list[dict]:
    """Dev entity F1 and relation F1 (strict, boundaries) of every setting, in the grid's order."""
    from nerre.decoding.confidence import keep_confident
    from nerre.metrics import evaluate

    symmetric = extractor.formulation.schema.symmetric_relations
    grid = []
    for entity_bias in entity_biases:
        for relation_bias in relation_biases:
            decoded, _ = decode(extractor, dev, entity_bias=entity_bias, relation_bias=relation_bias)
            for threshold in thresholds:
                kept = copy.deepcopy(decoded)
                for example in kept:
                    keep_confident(example, 0.0, threshold)
                scores = evaluate(dev, kept, symmetric=symmetric)
                grid.append({"entity_bias": entity_bias, "relation_bias": relation_bias,
                             "min_relation_score": threshold, "entity_f1": scores["entities"]["f1"],
                             "strict": scores["relations"]["strict"]["f1"],
                             "boundaries": scores["relations"]["boundaries"]["f1"],
                             "predicted_relations": scores["relations"]["strict"]["predicted"]})
            print(f"entity bias {entity_bias:+g}, relation bias {relation_bias:+g}: " + ", ".join(
                f"{p['min_relation_score']:g} -> {100 * p['strict']:.2f} / {100 * p['boundaries']:.2f}"
                for p in grid[-len(thresholds):]), flush=True)
    return grid


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from nerre.loaders import load_examples
    from nerre.metrics import evaluate, recall_by_novelty
    from nerre.predict import Extractor

    folder = args.results / args.run
    base = json.loads((folder / "result.json").read_text())
    configs = sorted(folder.glob("run/lightning_logs/version_*/config.yaml"))
    if not configs:
        raise SystemExit(f"{folder}: no run/lightning_logs/version_*/config.yaml; pass the folder run.py wrote")
    data = yaml.safe_load(configs[-1].read_text())["data"]
    if data.get("train_dev") or not data.get("val"):
        raise SystemExit(f"{configs[-1]}: the run trained on its dev split or has none; there is no dev set to tune "
                         "on (tune a run that trained on train alone)")
    adapter = args.adapter or run_adapter(folder)
    if adapter is None:
        raise SystemExit(f"{folder}: no adapter under run/; pass --adapter")
    data_dir = args.data_dir or Path(data.get("data_dir") or os.environ.get("NERRE_DATA_DIR", "."))

    def read(files: Any) -> list:
        return [ex for f in _files(files) for ex in load_examples(data_dir / f, data.get("format"),
                                                                    data.get("reader_options"))]

    dev, train = read(data["val"])[: args.dev_limit], read(data["train"])
    test = read(data["test"])[: base["test_examples"]]  # as many as the run tested (run.py --test-limit)
    extractor = Extractor.load(adapter, batch_size=args.batch_size, **AS_TRAINED)  # any saved tuning set aside
    grid = dev_grid(extractor, dev, args.entity_biases, args.relation_biases, args.thresholds)
    best = max(grid, key=lambda p: p[args.metric])  # max keeps the first of equals
    decoding = {k: best[k] for k in ("entity_bias", "relation_bias", "min_relation_score")}
    del extractor

    name = f"{args.run}-dev-tuned"
    out = args.results / name
    out.mkdir(parents=True, exist_ok=True)
    run = predict_split(adapter, test, None, args.batch_size, out / "predictions.jsonl", **AS_TRAINED | decoding)
    schema = run["schema"]
    scores = evaluate(test, run["predictions"], symmetric=schema.symmetric_relations)
    result = base | {
        "name": name,
        "command": " ".join(["python", "benchmarks/tune_decoding.py", *(argv if argv is not None else sys.argv[1:])]),
        "tuned_from": args.run,
        "training_command": base["command"],
        "decoding": decoding,
        "tuned_on": {"split": data["val"], "examples": len(dev), "metric": f"relation F1, {args.metric}",
                     "dev_score": best[args.metric]},
        "dev_grid": grid,
        "git_commit": git_commit(),
        "entities": scores["entities"],
        "relations": scores["relations"],
        "recall_seen_unseen": recall_by_novelty(test, run["predictions"], train),
        "defects": run["defects"],
        "constrained": run["constrained"],
        "predict_sentences_per_s": len(test) / run["seconds"],
        "predict_seconds": round(run["seconds"], 1),
    }
    result.pop("unconstrained", None)
    if args.save:
        saved = update_settings(adapter, decoding=decoding).resolve()  # named from the results folder, if under it
        results = args.results.resolve()
        result["saved"] = str(saved.relative_to(results) if saved.is_relative_to(results) else saved)
    write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    write_text(out / "result.md", markdown(result) + (
        f"\nThe adapter of [{args.run}](../{args.run}/result.md) (trained by `{base['command']}`), decoded with "
        f"entity bias {decoding['entity_bias']:+g}, relation bias {decoding['relation_bias']:+g} and relation "
        f"scores of at least {decoding['min_relation_score']:g}: the best dev relation F1 ({args.metric}, "
        f"{100 * best[args.metric]:.2f} on {len(dev)} examples of `{data['val']}`) of {len(grid)} settings "
        "(`dev_grid` in result.json).\n"))
    run_breakdown(schema, train, test, run["predictions"], out, f"Error breakdown: {name}",
                  f"of the adapter (inferred from {' + '.join(_files(data['train']))} where not declared)")
    print(f"chosen on dev: {decoding}; test relation F1 strict {100 * scores['relations']['strict']['f1']:.2f}, "
          f"boundaries {100 * scores['relations']['boundaries']['f1']:.2f}; entity F1 "
          f"{100 * scores['entities']['f1']:.2f}")
    return result


if __name__ == "__main__":
    main()
