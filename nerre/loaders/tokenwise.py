"""Writers for the token-based formats: CoNLL columns, SpERT JSON and Hugging Face datasets.

These formats hold tokens, not text, and spans of whole tokens. What they cannot hold is counted in the
returned notes, never dropped silently: entities that do not start and end on token boundaries, nested or
overlapping entities (columns and ``ner_tags`` hold one tag per token: the longest span of an overlapping
group is kept, as ``spacy.util.filter_spans`` does), relations (columns and ``ner_tags`` hold none), and
texts whose spacing is not single spaces between tokens (read back, the tokens are joined by single spaces).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nerre.example import Entity, Example
from nerre.loaders.options import ReadNotes
from nerre.loaders.tags import iob2_tags

Spans = list[tuple[int, int, Entity]]


def token_spans(example: Example, notes: ReadNotes) -> tuple[list[str], Spans]:
    """The example's words (whitespace inside a token becomes ``_``) and its entities as token spans."""
    tokens = example.tokens or []
    words = []
    for t in tokens:
        word = example.text[t.start : t.end]
        if any(c.isspace() for c in word):
            notes.add("tokens holding whitespace written with '_' for it", example.id)
            word = "_".join(word.split())
        words.append(word)
    if example.text != " ".join(words):
        notes.add("texts whose spacing is not single spaces between tokens (the tokens are kept)", example.id)
    starts = {t.start: i for i, t in enumerate(tokens)}
    ends = {t.end: i + 1 for i, t in enumerate(tokens)}
    spans = []
    for e in example.entities:
        if e.start in starts and e.end in ends and starts[e.start] < ends[e.end]:
            spans.append((starts[e.start], ends[e.end], e))
        else:
            notes.add("entities not written: they do not start and end on token boundaries", f"{example.id} {e}")
    return words, spans


def flat_tags(example: Example, notes: ReadNotes) -> tuple[list[str], list[str]]:
    """Words and IOB2 tags: the longest span of each overlapping group is kept, the others counted."""
    words, spans = token_spans(example, notes)
    kept: list[tuple[int, int, str]] = []
    taken: set[int] = set()
    for start, end, entity in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
        if taken.isdisjoint(range(start, end)):
            kept.append((start, end, entity.label))
            taken.update(range(start, end))
        else:
            notes.add("nested or overlapping entities not written (one tag per token)", f"{example.id} {entity}")
    if example.relations:
        notes.add("relations not written (the format holds none)", example.id, n=len(example.relations))
    return words, iob2_tags(len(words), kept)


def write_conll(examples: Iterable[Example], path: str | Path) -> ReadNotes:
    """Write ``token tag`` lines (IOB2), a blank line after each example."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = ReadNotes()
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for example in examples:
            words, tags = flat_tags(example, notes)
            if not words:
                notes.add("examples without tokens not written", example.id)
                continue
            f.write("".join(f"{w} {t}\n" for w, t in zip(words, tags)) + "\n")
    return notes


def write_spert(examples: Iterable[Example], path: str | Path) -> ReadNotes:
    """Write SpERT JSON: tokens, entities as token spans, relations indexing the entities."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes, records = ReadNotes(), []
    for example in examples:
        words, spans = token_spans(example, notes)
        index = {entity: k for k, (_, _, entity) in enumerate(spans)}
        relations = []
        for r in example.relations:
            if r.head in index and r.tail in index:
                relations.append({"type": r.label, "head": index[r.head], "tail": index[r.tail]})
            else:
                notes.add("relations not written: an argument was not written", example.id)
        record: dict[str, Any] = {
            "tokens": words,
            "entities": [{"type": e.label, "start": s, "end": t} for s, t, e in spans],
            "relations": relations,
        }
        if example.id is not None:
            record["orig_id"] = example.id
        records.append(record)
    path.write_text(json.dumps(records, ensure_ascii=False) + "\n", encoding="utf-8")
    return notes


def write_hf(examples: Iterable[Example], path: str | Path) -> ReadNotes:
    """Save a ``datasets.Dataset`` with ``id``, ``tokens`` and ``ner_tags`` (IOB2 strings) to the folder ``path``."""
    import datasets

    notes = ReadNotes()
    columns: dict[str, list[Any]] = {"id": [], "tokens": [], "ner_tags": []}
    for example in examples:
        words, tags = flat_tags(example, notes)
        columns["id"].append(example.id)
        columns["tokens"].append(words)
        columns["ner_tags"].append(tags)
    datasets.Dataset.from_dict(columns).save_to_disk(str(path))
    return notes
