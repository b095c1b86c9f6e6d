"""Share of gold answers inside the grammar of constrained decoding, per corpus and formulation.

    python benchmarks/grammar_coverage.py --data-dir ../shared/data

Writes ``benchmarks/results/grammar_coverage/coverage.json`` and ``coverage.md``: for every corpus file under
the data folder (CoNLL-2003, CoNLL04, ADE (the full set), SciERC, Resume NER), and for the tagged and bio
formulations, how many gold answers the grammar accepts byte by byte (no model needed), with the first
few it does not and why. The schema is inferred from each file, as ``nerre data stats`` does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nerre.atomic import write_text
from nerre.formulation import get_formulation
from nerre.formulation.grammar import grammar_coverage
from nerre.loaders import ReadNotes, load_examples
from nerre.schema import Schema

ROOT = Path(__file__).resolve().parents[1]
CORPORA = {  # file under the data folder: reader options
    "conll2003/train.txt": {}, "conll2003/dev.txt": {}, "conll2003/test.txt": {},
    "conll04/conll04_train.json": {}, "conll04/conll04_dev.json": {}, "conll04/conll04_test.json": {},
    "ade/ade_full.json": {},
    "scierc/scierc_train.json": {}, "scierc/scierc_dev.json": {}, "scierc/scierc_test.json": {},
    "resume_ner/train.char.bmes": {"tag_errors": "drop"}, "resume_ner/dev.char.bmes": {},
    "resume_ner/test.char.bmes": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "grammar_coverage")
    args = parser.parse_args()
    rows = []
    for name, options in CORPORA.items():
        path = args.data_dir / name
        if not path.exists():
            continue
        examples = load_examples(path, options=options, notes=ReadNotes())
        schema = Schema.infer(examples)
        for formulation in ("tagged", "bio"):
            started = time.perf_counter()
            coverage = grammar_coverage(get_formulation(formulation, schema), examples)
            coverage["seconds"] = round(time.perf_counter() - started, 1)
            rows.append({"corpus": name, **coverage})
            print(f"{name:32} {formulation:6} {coverage['accepted']:6}/{coverage['examples']:<6} "
                  f"{100 * coverage['share']:.2f}%  {coverage['outside'][:1]}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "coverage.json", json.dumps({"command": "python benchmarks/grammar_coverage.py",
                                                     "rows": rows}, indent=2, ensure_ascii=False) + "\n")
    lines = ["# Gold answers inside the grammar of constrained decoding", "",
             "`python benchmarks/grammar_coverage.py` (byte level, no model; schema inferred from each file)", "",
             "| corpus | formulation | inside | examples | share | first outside |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        first = r["outside"][0]["why"].replace("|", "\\|") if r["outside"] else ""
        lines.append(f"| {r['corpus']} | {r['formulation']} | {r['accepted']} | {r['examples']} | "
                     f"{100 * r['share']:.2f}% | {first} |")
    write_text(args.out / "coverage.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
