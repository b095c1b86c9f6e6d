"""JSON Lines and JSON lists of records with character offsets: users' own data, and nerre's prediction files.

One JSON object per line (``jsonl``), or one JSON list of the same objects (``json``, as Presidio's
evaluation data is kept): a text, a list of spans with character offsets (end exclusive), and optionally
relations ``{head, tail, label}`` indexing that span list. Field and span keys are detected from the first
record and span among two presets (nerre's own, and the Presidio/PII style with ``full_text`` and ``spans``)
unless given explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from nerre.errors import DataError
from nerre.example import Entity, Example, Relation
from nerre.loaders.records import Record, iter_lines_records, read_records

# (label, value, start, end) keys of a span
PRESETS: dict[str, tuple[str, str, str, str]] = {
    "nerre": ("label", "text", "start", "end"),
    "presidio": ("entity_type", "entity_value", "start_position", "end_position"),
}
# (text field, spans field) of a record, tried in order
FIELDS = (("text", "entities"), ("full_text", "spans"))


def read_jsonl(
    path: str | Path,
    text_field: str | None = None,
    spans_field: str | None = None,
    label_key: str | None = None,
    value_key: str | None = None,
    start_key: str | None = None,
    end_key: str | None = None,
    relations_field: str = "relations",
) -> list[Example]:
    """Read one annotated text per line.

    Args:
        path: the file.
        text_field: record field holding the text (default ``text``, else ``full_text`` as Presidio writes it).
        spans_field: record field holding the list of spans (required in every record; ``[]`` for none; default
            ``entities``, else ``spans``).
        label_key: key of a span's label.
        value_key: key of a span's text, optional in a span; when present it must equal ``text[start:end]``.
        start_key: key of a span's start offset.
        end_key: key of a span's end offset. Any of the four keys left as None is taken from the preset
            (``label/text/start/end`` or ``entity_type/entity_value/start_position/end_position``) that the first
            span of the file matches.
        relations_field: record field holding relations ``{head, tail, label}`` (``type`` is accepted for the
            label); optional in a record.

    Returns:
        One :class:`Example` per non-blank line. The id is the record's ``id`` when the record has that key
        (``null`` stays None), else ``"{file name}:{line}"``; so files from :func:`write_jsonl` read back as
        written.

    Raises:
        DataError: naming ``file:line`` for a missing or empty file, broken JSON, a missing field, a span out of
            range, a value that differs from the text it covers, or a relation index out of range.
    """
    return list(iter_jsonl(path, text_field, spans_field, label_key, value_key, start_key, end_key, relations_field))


def iter_jsonl(
    path: str | Path,
    text_field: str | None = None,
    spans_field: str | None = None,
    label_key: str | None = None,
    value_key: str | None = None,
    start_key: str | None = None,
    end_key: str | None = None,
    relations_field: str = "relations",
) -> Iterator[Example]:
    """:func:`read_jsonl`, one record at a time: memory stays flat however large the file. The span keys
    left as None come from the first record that has spans, as :func:`read_jsonl` takes them."""
    path = Path(path)
    fields: tuple[str, str] | None = None
    keys: tuple[str | None, ...] = (label_key, value_key, start_key, end_key)
    keys_known = all(key is not None for key in keys)
    for record in iter_lines_records(path):
        if fields is None:
            fields = _fields(record.data, text_field, spans_field)
        if not keys_known and isinstance(record.data.get(fields[1]), list) and record.data[fields[1]]:
            keys, keys_known = _span_keys(path, [record], fields[1], keys), True
        yield _example(path, record, *fields, keys, relations_field)


def read_json(
    path: str | Path,
    text_field: str | None = None,
    spans_field: str | None = None,
    label_key: str | None = None,
    value_key: str | None = None,
    start_key: str | None = None,
    end_key: str | None = None,
    relations_field: str = "relations",
) -> list[Example]:
    """Read one JSON list of the records :func:`read_jsonl` reads (e.g. Presidio's ``full_text`` + ``spans``).

    The options are those of :func:`read_jsonl`. Ids default to ``"{file name}:{index}"``; errors name the
    record index.
    """
    return _read(path, "json", text_field, spans_field, (label_key, value_key, start_key, end_key), relations_field)


def write_json(examples: Iterable[Example], path: str | Path) -> Path:
    """Write ``Example.to_dict()`` records as one JSON list (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [example.to_dict() for example in examples]
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def _read(path: str | Path, layout: str, text_field: str | None, spans_field: str | None,
          given: tuple[str | None, ...], relations_field: str) -> list[Example]:
    path = Path(path)
    records, _ = read_records(path, layout)
    text_field, spans_field = _fields(records[0].data, text_field, spans_field)
    keys = _span_keys(path, records, spans_field, given)
    return [_example(path, record, text_field, spans_field, keys, relations_field) for record in records]


def _fields(first: dict[str, Any], text_field: str | None, spans_field: str | None) -> tuple[str, str]:
    """The text and spans fields: as given, else the first preset pair the first record has."""
    for text, spans in FIELDS:
        if (text_field or text) in first and (spans_field or spans) in first:
            return text_field or text, spans_field or spans
    return text_field or FIELDS[0][0], spans_field or FIELDS[0][1]


def read_predictions(path: str | Path) -> list[Example]:
    """Read a prediction file (the JSONL that ``nerre predict`` writes) for scoring.

    As :func:`read_jsonl` with nerre's own keys, except that a record without an ``id`` gets none (not
    ``"{file name}:{line}"``), so that such records are paired with the gold by position.
    """
    path = Path(path)
    records, _ = read_records(path, "jsonl")
    keys = _span_keys(path, records, "entities", (None, None, None, None))
    examples = []
    for record in records:
        example = _example(path, record, "text", "entities", keys, "relations")
        if "id" not in record.data:
            example.id = None
        examples.append(example)
    return examples


def write_jsonl(examples: Iterable[Example], path: str | Path) -> Path:
    """Write ``Example.to_dict()`` one per line (UTF-8, ``ensure_ascii=False``): nerre's prediction format.

    The file is written beside ``path`` and renamed into place when complete."""
    from nerre.atomic import atomic_open

    path = Path(path)
    with atomic_open(path, "w", newline="\n") as f:
        for example in examples:
            f.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
    return path


def _span_keys(path: Path, records: list[Record], spans_field: str, given: tuple[str | None, ...]) -> tuple[str | None, ...]:
    """Fill the span keys left as None from the preset the file's first span matches."""
    if all(key is not None for key in given):
        return given
    first = next(
        ((r, r.data[spans_field][0]) for r in records
         if isinstance(r.data.get(spans_field), list) and r.data[spans_field]),
        None,
    )
    if first is None:  # no spans anywhere: the keys are never used
        return given
    record, span = first
    for label, value, start, end in PRESETS.values():
        if isinstance(span, dict) and all(k in span for k in (label, start, end)):
            return tuple(g if g is not None else p for g, p in zip(given, (label, value, start, end)))
    if all(given[i] is not None for i in (0, 2, 3)):  # label/start/end given; no value check
        return given
    presets = "; ".join("/".join(keys) for keys in PRESETS.values())
    found = sorted(span) if isinstance(span, dict) else type(span).__name__
    raise record.error(
        path,
        f"cannot tell the span keys: the first span has keys {found}, which match neither preset ({presets}); "
        "set the reader options label_key, start_key and end_key (and value_key)",
    )


def _example(
    path: Path,
    where: Record,
    text_field: str,
    spans_field: str,
    keys: tuple[str | None, ...],
    relations_field: str,
) -> Example:
    def fail(message: str) -> DataError:
        return where.error(path, message)

    record = where.data
    text = record.get(text_field)
    if not isinstance(text, str):
        raise fail(f"field {text_field!r} must hold the text (a string); set the reader option text_field to the right field")
    spans = record.get(spans_field)
    if not isinstance(spans, list):
        raise fail(f"field {spans_field!r} must hold a list of spans ([] for none); set the reader option spans_field to the right field")
    label_key, value_key, start_key, end_key = keys
    entities = []
    scores: dict[Entity | Relation, float] = {}  # what nerre predict writes: a score on spans and relations
    for k, span in enumerate(spans):
        if not isinstance(span, dict) or any(key not in span for key in (label_key, start_key, end_key)):
            raise fail(f"span {k} must be an object with keys {label_key!r}, {start_key!r}, {end_key!r}; found {span}")
        label, start, end = span[label_key], span[start_key], span[end_key]
        if not isinstance(label, str) or not label:
            raise fail(f"span {k}: {label_key!r} must be a non-empty string, found {label!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise fail(f"span {k}: {start_key!r} and {end_key!r} must be integer character offsets")
        if not 0 <= start < end <= len(text):
            problem = "is empty" if start >= end else f"is out of range for a text of {len(text)} characters"
            raise fail(f"span {k} [{start}, {end}) {problem} (offsets are characters, end exclusive)")
        if value_key is not None and value_key in span and span[value_key] != text[start:end]:
            raise fail(
                f"span {k}: {value_key!r} is {span[value_key]!r} but text[{start}:{end}] is {text[start:end]!r}; "
                "fix the offsets (characters, end exclusive) or the value"
            )
        entities.append(Entity(start, end, label))
        if _is_score(span.get("score")):
            scores[entities[-1]] = float(span["score"])
    raw_relations = record.get(relations_field)
    if raw_relations is None:
        raw_relations = []
    if not isinstance(raw_relations, list):
        raise fail(f"field {relations_field!r} must hold a list of relations {{head, tail, label}}")
    relations = [_relation(fail, k, r, entities) for k, r in enumerate(raw_relations)]
    scores.update((r, float(raw["score"])) for r, raw in zip(relations, raw_relations) if _is_score(raw.get("score")))
    rid = record["id"] if "id" in record else where.where(path)
    score = record.get("score") if _is_score(record.get("score")) else None
    return Example(text, entities, relations, id=None if rid is None else str(rid), scores=scores, score=score)


def _is_score(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _relation(fail: Callable[[str], DataError], k: int, relation: Any, entities: list[Entity]) -> Relation:
    if not isinstance(relation, dict) or "head" not in relation or "tail" not in relation:
        raise fail(f"relation {k} must be an object with head, tail and label")
    label = relation.get("label", relation.get("type"))
    if not isinstance(label, str) or not label:
        raise fail(f"relation {k} needs a non-empty string 'label' (or 'type')")
    ends = []
    for role in ("head", "tail"):
        value = relation[role]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(entities):
            raise fail(
                f"relation {k} {role} {value!r} is not an index into the {len(entities)} spans of this record "
                "(head/tail index the span list)"
            )
        ends.append(entities[value])
    return Relation(ends[0], ends[1], label)
