"""doccano exports: JSON Lines (or a JSON list) of ``{"id", "text", "entities", "relations"}``.

``entities`` are ``{"id", "label", "start_offset", "end_offset"}`` and ``relations`` are
``{"id", "from_id", "to_id", "type"}`` naming entity ids (doccano's relation-extraction export). Sequence
labeling exports without relations, ``"label": [[start, end, "LABEL"], ...]``, and old exports with the text
in ``data`` are read too. Offsets are characters, but some exports count UTF-16 code units (an emoji counts
2): the ``offsets`` option chooses, and ``auto`` decides per file and says which (see
:mod:`nerre.loaders.offsets`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nerre.example import Entity, Example, Relation
from nerre.loaders.offsets import SpanSample, char_offsets, choose_units
from nerre.loaders.options import ReadNotes
from nerre.loaders.records import Record, is_int, read_records


def read_doccano(
    path: str | Path, text_field: str | None = None, offsets: str | None = None, notes: ReadNotes | None = None
) -> list[Example]:
    """Read a doccano export.

    Args:
        path: the ``.jsonl`` export (a JSON list of the same records works too).
        text_field: field holding the text (default ``text``, else ``data``).
        offsets: ``chars``, ``utf16`` or ``auto`` (default).
        notes: collects what was converted or skipped.

    Returns:
        One :class:`Example` per record, id from the record's ``id`` (else ``"{file}:{line}"``).

    Raises:
        DataError: naming the line for broken JSON, a missing text, or a span outside the text.
    """
    path = Path(path)
    notes = ReadNotes() if notes is None else notes
    records, _ = read_records(path)
    parsed = [(record, _text(path, record, text_field), _spans(path, record)) for record in records]
    samples = (SpanSample(text, s, e) for _, text, spans in parsed for _, _, s, e in spans)
    units = choose_units(samples, offsets, notes)
    return [_example(path, record, text, spans, units, notes) for record, text, spans in parsed]


def _text(path: Path, record: Record, text_field: str | None) -> str:
    data = record.data
    field = text_field or ("text" if "text" in data else "data")
    if not isinstance(data.get(field), str):
        raise record.error(path, f"field {field!r} must hold the text (a string); the record has "
                           f"{', '.join(sorted(data))}; set the reader option text_field")
    return data[field]


def _spans(path: Path, record: Record) -> list[tuple[Any, str, int, int]]:
    """``(entity id, label, start, end)`` in the file's units."""
    data = record.data
    if "entities" in data:
        entities = data["entities"]
        if not isinstance(entities, list):
            raise record.error(path, "'entities' must be a list of {id, label, start_offset, end_offset}")
        out = []
        for k, e in enumerate(entities):
            if not isinstance(e, dict) or not all(key in e for key in ("label", "start_offset", "end_offset")):
                raise record.error(path, f"entity {k} must be an object with id, label, start_offset, end_offset")
            out.append((e.get("id", k), e["label"], e["start_offset"], e["end_offset"]))
    else:
        triples = data.get("label", data.get("labels", []))
        if not isinstance(triples, list) or not all(isinstance(t, list) and len(t) == 3 for t in triples):
            raise record.error(path, "expected 'entities' (relation export) or 'label': [[start, end, LABEL], ...] "
                               "(sequence labeling export); a text classification export has no spans to read")
        out = [(k, t[2], t[0], t[1]) for k, t in enumerate(triples)]
    for k, (_, label, start, end) in enumerate(out):
        if not isinstance(label, str) or not label or not is_int(start) or not is_int(end):
            raise record.error(path, f"entity {k} needs a non-empty string label and integer offsets")
    return out


def _example(path: Path, record: Record, text: str, spans: list, units: str, notes: ReadNotes) -> Example:
    where = record.where(path)
    by_id: dict[Any, Entity] = {}
    seen: set[Entity] = set()
    convert = char_offsets(text, units)
    for eid, label, start, end in spans:
        s, e = convert(start, end)
        if s is None or e is None or not 0 <= s <= e <= len(text):
            raise record.error(path, f"entity {eid!r} [{start}, {end}) is outside the text ({len(text)} characters, "
                               f"offsets read as {units}); check the offsets reader option")
        if s == e:
            notes.add("empty entities skipped", where)
            continue
        entity = Entity(s, e, label)
        if entity in seen:
            notes.add("duplicate entities (same span and label) merged", where)
        seen.add(entity)
        by_id[eid] = entity
    relations = []
    raw = record.data.get("relations") or []
    if not isinstance(raw, list):
        raise record.error(path, "'relations' must be a list of {id, from_id, to_id, type}")
    for k, r in enumerate(raw):
        if not isinstance(r, dict) or not all(key in r for key in ("from_id", "to_id", "type")):
            raise record.error(path, f"relation {k} must be an object with from_id, to_id and type")
        head, tail = by_id.get(r["from_id"]), by_id.get(r["to_id"])
        if head is None or tail is None:
            notes.add("relations skipped: from_id or to_id names no entity of the record", where)
            continue
        relations.append(Relation(head, tail, str(r["type"])))
    rid, score = record.data.get("id"), record.data.get("score")
    score = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None
    return Example(text, sorted(seen), relations, id=str(rid) if rid is not None else where, score=score)


def write_doccano(examples: Iterable[Example], path: str | Path) -> ReadNotes:
    """Write doccano's relation-extraction JSONL (character offsets; ids unique across the file).

    A scored prediction's document score goes into a top-level ``score`` field, which doccano keeps as the
    example's metadata (it shows it beside the text). doccano's spans and relations hold no score: per-entity
    and per-relation scores are not written (counted); use JSONL, Label Studio, spaCy or BRAT for those.
    """
    notes = ReadNotes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    next_id = 1
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for example in examples:
            ids = {e: next_id + k for k, e in enumerate(example.entities)}
            next_id += len(ids)
            entities = [{"id": ids[e], "label": e.label, "start_offset": e.start, "end_offset": e.end}
                        for e in example.entities]
            relations = []
            for r in example.relations:
                relations.append({"id": next_id, "from_id": ids[r.head], "to_id": ids[r.tail], "type": r.label})
                next_id += 1
            record = {"id": example.id, "text": example.text, "entities": entities, "relations": relations}
            if example.score is not None:
                record["score"] = round(example.score, 6)
            if example.scores:
                notes.add("entity and relation scores not written (doccano's spans and relations hold none; the "
                          "document score is in its metadata)", str(example.id), n=len(example.scores))
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return notes
