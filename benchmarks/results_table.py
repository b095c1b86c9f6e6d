"""The results tables of the README and the docs, built from ``benchmarks/results/*/result.json``.

    python benchmarks/results_table.py           # rewrite the tables in README.md and docs/
    python benchmarks/results_table.py --check   # exit 1 if a page's table differs from the files

The runs' table sits between ``<!-- results:start -->`` and ``<!-- results:end -->``, the ablations'
comparison (``benchmarks/results/ablations/``) between ``<!-- ablations:start -->`` and
``<!-- ablations:end -->``, in the pages :data:`PAGES` lists; a test checks that they match the committed
result files. Links point into ``benchmarks/results/`` from the README and into ``docs/results/`` (a link
to it) from the docs pages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ablations import comparison, markdown
from common import RESULTS, ROOT, pct, protocol, rate

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

On the other corpora, each in its literature's convention:

| corpus | system | model | figure | convention | source |
|---|---|---|---:|---|---|
| Resume NER (Chinese) | Lattice LSTM | character LSTM with a word lattice | 94.46 | entity F1, span-exact on characters (BMES), test set | Zhang and Yang, ACL 2018 |
| Resume NER (Chinese) | FLAT + BERT | BERT-wwm, full fine-tuning | 95.86 | the same | Li et al., ACL 2020 |
| ADE | SpERT | BERT-base | 78.84 | strict relation F1, macro over 10 folds | Eberts and Ulges, ECAI 2020 |
| SciERC | SpERT | SciBERT | 50.84 | relation F1, boundaries, test set | Eberts and Ulges, ECAI 2020 |
| SciERC | UIE | T5-large | 36.53 | relation F1, strict | Lu et al., ACL 2022 |
"""
PAGES: dict[str, tuple[str, tuple[str, ...]]] = {  # page: (where its links to result files start, its blocks)
    "README.md": ("benchmarks/results", ("results",)),
    "docs/benchmarks.md": ("results", ("results",)),
    "docs/open-questions.md": ("results", ("ablations",)),
}


def table(results: Path = RESULTS, links: str = "benchmarks/results") -> str:
    """Markdown for every ``<name>/result.json`` under ``results``, sorted by name; ``links``: the folder the
    rows link into (``benchmarks/results`` from the repository root)."""
    rows = [
        "| run | protocol | train examples / steps | test | entity P / R / F1 | relation F1 strict / boundaries | "
        "recall seen / unseen | defects | train tok/s | predict sent/s | wall fit / predict |",
        "|---|---|---|---:|---|---|---|---:|---:|---:|---|",
    ]
    commands = []
    for path in sorted(results.glob("*/result.json")):
        r = json.loads(path.read_text())
        e, rel, novelty = r["entities"], r["relations"], r["recall_seen_unseen"]
        has_relations = bool(rel["strict"]["gold"])
        relation = f"{pct(rel['strict']['f1'])} / {pct(rel['boundaries']['f1'])}" if has_relations else ""
        name = f"[{r['name']}]({links}/{path.parent.name}/result.md)"
        rows.append(
            f"| {name} | {protocol(path.parent)} | {r['train_examples']} / {r['steps']} | {r['test_examples']} | "
            f"{pct(e['precision'])} / {pct(e['recall'])} / {pct(e['f1'])} | {relation} | "
            f"{pct(novelty['seen']['recall'])} / {pct(novelty['unseen']['recall'])} | "
            f"{sum(r['defects'].values())} | {rate(r['train_tokens_per_s'])} | {r['predict_sentences_per_s']:.2f} | "
            f"{r['fit_seconds'] / 60:.0f} / {r['predict_seconds'] / 60:.0f} min |"
        )
        commands.append(f"- {r['name']}: `{r['command']}` (seed {r['seed']}, commit {r['git_commit'][:7]})")
    return "\n".join(rows) + "\n\nCommands (run from the repository root with `NERRE_DATA_DIR` set):\n\n" + \
        "\n".join(commands) + "\n\n" + ANCHORS


def ablations(results: Path, links: str = "benchmarks/results") -> str:
    """The ablations' comparison under ``results`` as Markdown, with the command that produced it."""
    rows = comparison(results)
    if not rows:
        return "No ablation results yet: run `python benchmarks/ablations.py`.\n"
    first = next(iter(rows.values()))
    commits = ", ".join(f"{name} {row['git_commit'][:7]}" for name, row in rows.items() if "," not in name)
    return (f"{first['train_examples']} training sentences, {first['steps']} steps, {first['test_examples']} test "
            f"sentences, seed {first['seed']}:\n`{first['command']}`\n\n"
            f"{markdown(rows)}\nCommits: {commits}.\n\n![entity F1 and recall on unseen mentions per variant]"
            f"({links}/ablations/comparison.png)\n")


def _replace(text: str, start: str, end: str, body: str, page: str) -> str:
    if start not in text or end not in text:
        raise ValueError(f"{page} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}{end}{tail}"


def render(text: str, results: Path = RESULTS, page: str = "README.md") -> str:
    """``text`` (the page ``page`` of :data:`PAGES`) with its blocks rebuilt from ``results``."""
    links, blocks = PAGES[page]
    if "results" in blocks:
        text = _replace(text, START, END, table(results, links), page)
    if "ablations" in blocks:
        text = _replace(text, ABLATIONS_START, ABLATIONS_END, ablations(results / "ablations", links), page)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the pages are up to date")
    args = parser.parse_args()
    stale = []
    for page in PAGES:
        current = (ROOT / page).read_text()
        wanted = render(current, page=page)
        if current != wanted:
            stale.append(page)
            if not args.check:
                (ROOT / page).write_text(wanted)
    if args.check and stale:
        sys.exit(f"the results tables of {', '.join(stale)} differ from benchmarks/results: "
                 "run python benchmarks/results_table.py")


if __name__ == "__main__":
    main()
