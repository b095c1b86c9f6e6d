"""An adapter's test scores decoded with and without relation signatures (no training).

    export NERRE_DATA_DIR=/path/to/data     # the folder holding conll04/
    python benchmarks/signatures.py --adapter conll04 --config configs/conll04.yaml --name conll04-shipped-signatures

Predicts the config's test split twice with constrained decoding: with signatures (the adapter's own, or,
for an adapter saved without any, those the config's training data show, as ``nerre fit`` infers them;
``--signatures-from`` names another file) and without. Writes ``benchmarks/results/NAME/``:
``predictions_{with,without}_signatures.jsonl``, ``result.json``/``.md`` (entity and strict/boundaries
relation F1 of both, and the signatures used), and the error breakdown of each
(``with_signatures/breakdown.md``, ``without_signatures/breakdown.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml
from breakdown import _files, run_breakdown
from run import RESULTS, git_commit, machine, predict_split

from nerre.atomic import write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True, help="adapter folder, or the name of a shipped adapter")
    parser.add_argument("--config", type=Path, required=True, help="the config whose test split to predict")
    parser.add_argument("--name", required=True, help="folder name under benchmarks/results/")
    parser.add_argument("--signatures-from", help="types file or corpus to take the signatures from (default: the "
                                                  "adapter's, else inferred from the config's training files)")
    parser.add_argument("--test-limit", type=int, help="predict only the first N test examples")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("NERRE_DATA_DIR", ".")))
    args = parser.parse_args()

    from nerre.adapter import read_settings
    from nerre.loaders import load_examples
    from nerre.metrics import evaluate
    from nerre.schema import Schema

    data = yaml.safe_load(args.config.read_text())["data"]
    train_files = _files(data.get("train"))
    train = [ex for file in train_files for ex in load_examples(args.data_dir / file, data.get("format"))]
    test = load_examples(args.data_dir / data["test"], data.get("format"))[: args.test_limit]
    saved = Schema(**read_settings(args.adapter).schema)
    signatures_from = args.signatures_from
    if signatures_from is None and not saved.signatures:
        signatures_from = str(args.data_dir / train_files[0]) if len(train_files) == 1 else None
    out = RESULTS / args.name
    out.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    result: dict = {"name": args.name, "command": " ".join(["python", *sys.argv]), "adapter": str(args.adapter),
                    "config": str(args.config), "test_examples": len(test), "git_commit": commit}
    for label, options in (("with_signatures", {"signatures": True, "signatures_from": signatures_from}),
                           ("without_signatures", {"signatures": False})):
        started = time.perf_counter()
        run = predict_split(args.adapter, test, True, args.batch_size, out / f"predictions_{label}.jsonl", **options)
        schema = run["schema"]
        scores = evaluate(test, run["predictions"], symmetric=schema.symmetric_relations)
        breakdown = run_breakdown(schema, train, test, run["predictions"], out / label,
                                  f"Error breakdown: {args.name}, {label.replace('_', ' ')}",
                                  f"of the adapter, else inferred from {' + '.join(train_files)}")
        result[label] = {"entity_f1": scores["entities"]["f1"], "relation_f1_strict": scores["relations"]["strict"]["f1"],
                         "relation_f1_boundaries": scores["relations"]["boundaries"]["f1"],
                         "relations": scores["relations"]["strict"], "defects": run["defects"],
                         "signatures": schema.describe_signatures() if options["signatures"] else None,
                         "recall_given_correct_entities": breakdown["relations"]["recall_given_correct_entities"],
                         "false_positives": breakdown["relations"]["false_positives"],
                         "predict_seconds": round(time.perf_counter() - started, 1)}
    result["machine"] = machine()
    write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    rows = ["| decoding | entity F1 | relation F1 (strict) | relation F1 (boundaries) | FPs | FPs against signature |",
            "|---|---:|---:|---:|---:|---:|"]
    for label in ("with_signatures", "without_signatures"):
        r = result[label]
        rows.append(f"| {label.replace('_', ' ')} | {100 * r['entity_f1']:.2f} | {100 * r['relation_f1_strict']:.2f} | "
                    f"{100 * r['relation_f1_boundaries']:.2f} | {r['false_positives']['total']} | "
                    f"{r['false_positives']['against_signature']} |")
    text = (f"# {args.name}: {args.adapter} decoded with and without signatures\n\n`{result['command']}`\n\n"
            + "\n".join(rows) + f"\n\n{len(test)} test sentences of {data['test']}; {result['machine']}; "
            f"commit {commit}.\n")
    write_text(out / "result.md", text)
    print(text)


if __name__ == "__main__":
    main()
