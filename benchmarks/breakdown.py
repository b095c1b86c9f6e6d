"""The error breakdown of a benchmark result folder, regenerated from its committed predictions (no model).

    export NERRE_DATA_DIR=/path/to/data     # the folder holding conll04/ ...
    python benchmarks/breakdown.py benchmarks/results/conll04-cpu-candidates [more folders ...]

Reads the folder's ``result.json`` (its config, test size and overrides) and ``predictions.jsonl``; the gold
is the config's test split. Relation signatures are the config's declared ones, the rest inferred from its
training files, as ``nerre fit`` infers them. Writes ``breakdown.json`` and ``breakdown.md`` beside the
predictions (:mod:`nerre.breakdown` says what each count means). ``benchmarks/run.py`` writes them for every
new run with relations.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _files(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _override(overrides: list[str], key: str) -> str | None:
    """The value a ``--key value`` or ``--key=value`` override sets, if any."""
    for i, item in enumerate(overrides):
        if item == key and i + 1 < len(overrides):
            return overrides[i + 1]
        if item.startswith(key + "="):
            return item.split("=", 1)[1]
    return None


def run_breakdown(schema: Any, train: list[Any], test: list[Any], predictions: list[Any], out: Path, title: str,
                  signature_source: str) -> dict[str, Any]:
    """Break down ``predictions`` of ``test`` with the signatures ``schema`` declares, the rest inferred from
    ``train``, and write ``breakdown.json``/``.md`` into ``out``."""
    from nerre.breakdown import error_breakdown, write_breakdown

    signatures = schema.with_signatures(schema.infer_signatures(train)).signatures if train else schema.signatures
    result = error_breakdown(test, predictions, schema.symmetric_relations, signatures, signature_source)
    write_breakdown(result, out, title)
    return result


def regenerate(folder: Path, data_dir: Path) -> dict[str, Any]:
    """Write the breakdown of one result folder; returns it."""
    from nerre.loaders import load_examples
    from nerre.loaders.jsonl import read_predictions
    from nerre.schema import Schema

    result = json.loads((folder / "result.json").read_text())
    config = yaml.safe_load((ROOT / result["config"]).read_text())
    data = config.get("data", {})
    overrides = result.get("overrides", [])
    train_files = _files(_override(overrides, "--data.train") or data.get("train"))
    if data.get("train_dev") or _override(overrides, "--data.train_dev") in ("true", "True"):
        train_files += _files(data.get("val"))
    test_file = _override(overrides, "--data.test") or data["test"]
    if data.get("schema"):
        schema = Schema(**data["schema"])
    elif data.get("types_file"):
        schema = Schema.from_types_file(data_dir / data["types_file"])
    else:
        schema = None
    train = [ex for file in train_files for ex in load_examples(data_dir / file, data.get("format"))]
    gold = load_examples(data_dir / test_file, data.get("format"))[: result.get("test_examples")]
    schema = schema or Schema.infer(train + gold)
    predictions = read_predictions(folder / "predictions.jsonl")
    source = f"declared in {result['config']}, else inferred from {' + '.join(train_files) or 'nothing'}"
    return run_breakdown(schema, train, gold, predictions, folder, f"Error breakdown: {result['name']}", source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="result folders (each with result.json, predictions.jsonl)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("NERRE_DATA_DIR", ".")),
                        help="the folder the config's data paths are relative to (default $NERRE_DATA_DIR)")
    args = parser.parse_args()
    for folder in args.folders:
        rel = regenerate(folder, args.data_dir)["relations"]
        given = rel["recall_given_correct_entities"]
        print(f"{folder}: {rel['correct']}/{rel['gold']} relations found; {given['found']}/"
              f"{given['gold_with_both_entities_right']} with both entities right; {rel['false_positives']['total']} "
              f"false positives -> {folder / 'breakdown.md'}")


if __name__ == "__main__":
    main()
