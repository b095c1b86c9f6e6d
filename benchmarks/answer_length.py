"""How long each formulation's answers are: characters and model tokens of the gold answers of a corpus.

    python benchmarks/answer_length.py --data conll2003/dev.txt
    python benchmarks/answer_length.py --data conll04/conll04_dev.json --types conll04/conll04_types.json

Paths are relative to ``$NERRE_DATA_DIR``. Every answer is ``encode`` of a gold example, tokenized by
the model's tokenizer (the default model's unless ``--model``); the source texts are counted the same
way. Writes ``benchmarks/results/answer_length_NAME.{json,md}`` (NAME: ``conll2003-dev``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from nerre.formulation import FORMULATIONS, get_formulation
from nerre.loaders import load_examples
from nerre.models import DEFAULT_MODEL, load_tokenizer, resolve_model
from nerre.schema import Schema

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def measure(data: Path, types: Path | None, model: str) -> dict[str, dict[str, float]]:
    """Characters and model tokens of the sources and of each formulation's answers, in total and per example."""
    examples = load_examples(data)
    schema = Schema.from_types_file(types) if types else Schema.infer(examples)
    tokenizer = load_tokenizer(resolve_model(model))

    def count(texts: list[str]) -> dict[str, float]:
        chars = sum(map(len, texts))
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        return {"chars": chars, "tokens": tokens, "tokens_per_example": tokens / len(texts)}

    rows = {"source": count([ex.text for ex in examples])}
    for name in FORMULATIONS:
        formulation = get_formulation(name, schema)
        rows[name] = count([formulation.encode(ex) for ex in examples])
    for row in rows.values():
        row["chars_vs_tagged"] = row["chars"] / rows["tagged"]["chars"]
        row["tokens_vs_tagged"] = row["tokens"] / rows["tagged"]["tokens"]
    return rows


def markdown(rows: dict[str, dict[str, float]], title: str) -> str:
    lines = [f"{title}\n", "| answer | characters | model tokens | tokens per example | chars / tagged | tokens / tagged |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['chars']} | {r['tokens']} | {r['tokens_per_example']:.1f} | "
                     f"{r['chars_vs_tagged']:.2f} | {r['tokens_vs_tagged']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="corpus, relative to $NERRE_DATA_DIR")
    parser.add_argument("--types", help="SpERT types file for display names, relative to $NERRE_DATA_DIR")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    root = Path(os.environ.get("NERRE_DATA_DIR", "."))
    rows = measure(root / args.data, root / args.types if args.types else None, args.model)
    name = "-".join(dict.fromkeys(re.split(r"[/_]", str(Path(args.data).with_suffix("")))))  # conll04-dev
    title = f"Gold answers of `{args.data}`, tokenized by `{args.model}`:"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"answer_length_{name}.json").write_text(json.dumps(
        {"data": args.data, "types": args.types, "model": args.model, "rows": rows}, indent=2) + "\n")
    (args.output_dir / f"answer_length_{name}.md").write_text(markdown(rows, title))
    print(markdown(rows, title))


if __name__ == "__main__":
    main()
