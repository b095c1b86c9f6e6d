"""Spans as annotators draw them: stray white space at their ends, spans of white space only, and spans
that start or end inside a word. Every reader's examples pass through :func:`normalize_spans`, which says
what it changed in the reader's :class:`~nerre.loaders.options.ReadNotes`; nothing is moved silently.

* A span with leading or trailing white space (``"China "``, as doccano and Label Studio users often
  draw them) is trimmed to its text, unless ``trim_spans=False`` keeps it as drawn.
* A span of white space only is dropped, with the relations that name it.
* A span that starts or ends inside a word (``Linux Foundatio`` + ``n``) is kept where it is: the
  example's tokens are split at that point (:class:`~nerre.example.Example` does it), so the
  constrained decoder may place a tag there. Such spans are counted.
"""

from __future__ import annotations

from dataclasses import replace

from nerre.example import Entity, Example, Relation, inside_words, tokenize
from nerre.loaders.options import ReadNotes

TRIMMED = "spans with white space at an end trimmed to their text (trim_spans=false keeps them as drawn)"
KEPT = "spans with white space at an end kept as drawn (trim_spans=false; constrained decoding cannot write them)"
BLANK = "spans of white space only dropped"
BLANK_RELATIONS = "relations dropped: an argument was a span of white space only"
MERGED = "duplicate entities after trimming (same span and label) merged"
INSIDE = "spans starting or ending inside a word: the word's token is split there, the span is kept"


CHARACTER_FORMATS = ("jsonl", "json", "doccano", "labelstudio", "brat")
"""The formats whose spans are character offsets drawn by people (token formats align spans to tokens)."""


def normalize_spans(examples: list[Example], notes: ReadNotes, trim: bool = True) -> list[Example]:
    """The examples with stray white space trimmed from spans, white-space spans dropped, and spans inside
    words counted (see the module docstring); ``notes`` counts each, with the first example's id."""
    out = []
    for example in examples:
        out.append(_normalize(example, notes, trim) if example.entities else example)
    return out


def _normalize(example: Example, notes: ReadNotes, trim: bool) -> Example:
    text, where = example.text, example.id
    mapping: dict[Entity, Entity | None] = {}
    for entity in example.entities:
        span = text[entity.start : entity.end]
        if not span.strip():
            mapping[entity] = None
            notes.add(BLANK, where)
            continue
        lead, trail = len(span) - len(span.lstrip()), len(span) - len(span.rstrip())
        if lead or trail:
            if trim:
                mapping[entity] = Entity(entity.start + lead, entity.end - trail, entity.label)
                notes.add(TRIMMED, where)
                continue
            notes.add(KEPT, where)
        mapping[entity] = entity
    changed = any(new != old for old, new in mapping.items())
    entities = list(dict.fromkeys(e for e in mapping.values() if e is not None))
    kept = sum(e is not None for e in mapping.values())
    if kept != len(entities):
        notes.add(MERGED, where, n=kept - len(entities))
    cuts = inside_words(tokenize(text), entities)  # the words before Example split them at those cuts
    inside = sum(1 for e in entities if e.start in cuts or e.end in cuts)
    if inside:
        notes.add(INSIDE, where, n=inside)
    if not changed:
        return example
    relations = []
    for r in example.relations:
        head, tail = mapping.get(r.head, r.head), mapping.get(r.tail, r.tail)
        if head is None or tail is None:
            notes.add(BLANK_RELATIONS, where)
            continue
        relations.append(Relation(head, tail, r.label))
    return replace(example, entities=entities, relations=list(dict.fromkeys(relations)), tokens=None)
