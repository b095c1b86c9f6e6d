"""The README's results table, built from ``benchmarks/results/*/result.json``.

    python benchmarks/results_table.py           # rewrite the table in README.md
    python benchmarks/results_table.py --check   # exit 1 if README.md's table differs from the files

The runs' table sits between ``<!-- results:start -->`` and ``<!-- results:end -->`` in README.md, the
ablations' comparison (``benchmarks/results/ablations/``) between ``<!-- ablations:start -->`` and
``<!-- ablations:end -->``; a test checks that both match the committed result files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
ABLATIONS_START, ABLATIONS_END = "<!-- ablations:start -->", "<!-- ablations:end -->"

ANCHORS = """\
Published figures on the same test sets (micro F1, offsets matched; relation F1 strict):

| system | model | CoNLL-2003 entity F1 | CoNLL04 relation F1 | source |
|---|---|---:|---:|---|
| TANL | T5-base, full fine-tuning | 91.7 | 71.4 (trained on train+dev) | Paolini et al., ICLR 2021 |
| UIE | T5-large, full fine-tuning | 92.99 | 75.00 | Lu et al., ACL 2022 |
| SpERT | BERT-base | | 71.47 | Eberts and Ulges, ECAI 2020 |
| BERT-base tagger | BERT-base, full fine-tuning | about 91 to 92 | | Devlin et al., NAACL 2019 |
"""


def pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def rate(value: float | None, digits: int = 0) -> str:
    """A speed, or ``n/a`` when the run logged none (a run shorter than ``log_every_n_steps``)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(results: Path = RESULTS) -> str:
    """Markdown for every ``<name>/result.json`` under ``results``, sorted by name."""
    rows = [
        "| run | train examples / steps | test | entity P / R / F1 | relation F1 strict / boundaries | "
        "recall seen / unseen | defects | train tok/s | predict sent/s | wall fit / predict |",
        "|---|---|---:|---|---|---|---:|---:|---:|---|",
    ]
    commands = []
    for path in sorted(results.glob("*/result.json")):
        r = json.loads(path.read_text())
        e, rel, novelty = r["entities"], r["relations"], r["recall_seen_unseen"]
        has_relations = bool(rel["strict"]["gold"])
        relation = f"{pct(rel['strict']['f1'])} / {pct(rel['boundaries']['f1'])}" if has_relations else ""
        name = f"[{r['name']}](benchmarks/results/{path.parent.name}/result.md)"
        rows.append(
            f"| {name} | {r['train_examples']} / {r['steps']} | {r['test_examples']} | "
            f"{pct(e['precision'])} / {pct(e['recall'])} / {pct(e['f1'])} | {relation} | "
            f"{pct(novelty['seen']['recall'])} / {pct(novelty['unseen']['recall'])} | "
            f"{sum(r['defects'].values())} | {rate(r['train_tokens_per_s'])} | {r['predict_sentences_per_s']:.2f} | "
            f"{r['fit_seconds'] / 60:.0f} / {r['predict_seconds'] / 60:.0f} min |"
        )
        commands.append(f"- {r['name']}: `{r['command']}` (seed {r['seed']}, commit {r['git_commit'][:7]})")
    return "\n".join(rows) + "\n\nCommands (run from the repository root with `NERRE_DATA_DIR` set):\n\n" + \
        "\n".join(commands) + "\n\n" + ANCHORS


def ablations(results: Path) -> str:
    """The ablations' comparison under ``results`` as Markdown, with the command that produced it."""
    from ablations import comparison, markdown

    rows = comparison(results)
    if not rows:
        return "No ablation results yet: run `python benchmarks/ablations.py`.\n"
    first = next(iter(rows.values()))
    commits = ", ".join(f"{name} {row['git_commit'][:7]}" for name, row in rows.items() if "," not in name)
    return (f"{first['train_examples']} training sentences, {first['steps']} steps, {first['test_examples']} test "
            f"sentences, seed {first['seed']}:\n`{first['command']}`\n\n"
            f"{markdown(rows)}\nCommits: {commits}.\n\n![entity F1 and recall on unseen mentions per variant]"
            f"(benchmarks/results/ablations/comparison.png)\n")


def _replace(readme: str, start: str, end: str, body: str) -> str:
    if start not in readme or end not in readme:
        raise ValueError(f"README.md has no {start} ... {end} markers")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}{end}{tail}"


def render(readme: str, results: Path = RESULTS) -> str:
    """``readme`` with the runs' table and the ablations' comparison rebuilt from ``results``."""
    readme = _replace(readme, START, END, table(results))
    return _replace(readme, ABLATIONS_START, ABLATIONS_END, ablations(results / "ablations"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args()
    current = README.read_text()
    wanted = render(current)
    if args.check:
        sys.exit(0 if current == wanted else "README.md's results table differs from benchmarks/results: "
                 "run python benchmarks/results_table.py")
    README.write_text(wanted)


if __name__ == "__main__":
    main()
