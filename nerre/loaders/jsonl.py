"""JSON Lines with character offsets: users' own data, and nerre's prediction files.

One JSON object per line: a text, a list of spans with character offsets (end exclusive), and optionally
relations ``{head, tail, label}`` indexing that span list. Span keys are detected from the first span of the
file among two presets (nerre's own and the Presidio/PII style) unless given explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nerre.errors import DataError
from nerre.example import Entity, Example, Relation
from nerre.loaders.textfile import json_error, read_text

# (label, value, start, end) keys of a span
PRESETS: dict[str, tuple[str, str, str, str]] = {
    "nerre": ("label", "text", "start", "end"),
    "presidio": ("entity_type", "entity_value", "start_position", "end_position"),
}


def read_jsonl(
    path: str | Path,
    text_field: str = "text",
    spans_field: str = "entities",
    label_key: str | None = None,
    value_key: str | None = None,
    start_key: str | None = None,
    end_key: str | None = None,
    relations_field: str = "relations",
) -> list[Example]:
    """Read one annotated text per line.

    Args:
        path: the file.
        text_field: record field holding the text.
        spans_field: record field holding the list of spans (required in every record; ``[]`` for none).
        label_key, value_key, start_key, end_key: keys inside a span. Any left as None is taken from the preset
            (``label/text/start/end`` or ``entity_type/entity_value/start_position/end_position``) that the first
            span of the file matches. The value is optional in a span; when present it must equal
            ``text[start:end]``.
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
    path = Path(path)
    records = list(_records(path))
    if not records:
        raise DataError(path, "the file holds no records; expected one JSON object per line")
    keys = _span_keys(path, records, spans_field, (label_key, value_key, start_key, end_key))
    return [_example(path, line, record, text_field, spans_field, keys, relations_field) for line, record in records]


def read_predictions(path: str | Path) -> list[Example]:
    """Read a prediction file (the JSONL that ``nerre predict`` writes) for scoring.

    As :func:`read_jsonl` with nerre's own keys, except that a record without an ``id`` gets none (not
    ``"{file name}:{line}"``), so that such records are paired with the gold by position.
    """
    path = Path(path)
    records = list(_records(path))
    if not records:
        raise DataError(path, "the file holds no records; expected one JSON object per line")
    keys = _span_keys(path, records, "entities", (None, None, None, None))
    examples = []
    for line, record in records:
        example = _example(path, line, record, "text", "entities", keys, "relations")
        if "id" not in record:
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


def _records(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise DataError(path, f"not valid JSON: {json_error(e)}; each line must be one JSON object", line=number) from None
        if not isinstance(record, dict):
            raise DataError(path, f"expected a JSON object, found {type(record).__name__}", line=number)
        yield number, record


def _span_keys(
    path: Path, records: list[tuple[int, dict[str, Any]]], spans_field: str, given: tuple[str | None, ...]
) -> tuple[str | None, ...]:
    """Fill the span keys left as None from the preset the file's first span matches."""
    if all(key is not None for key in given):
        return given
    first = next(
        ((line, r[spans_field][0]) for line, r in records if isinstance(r.get(spans_field), list) and r[spans_field]),
        None,
    )
    if first is None:  # no spans anywhere: the keys are never used
        return given
    line, span = first
    for label, value, start, end in PRESETS.values():
        if isinstance(span, dict) and all(k in span for k in (label, start, end)):
            return tuple(g if g is not None else p for g, p in zip(given, (label, value, start, end)))
    if all(given[i] is not None for i in (0, 2, 3)):  # label/start/end given; no value check
        return given
    presets = "; ".join("/".join(keys) for keys in PRESETS.values())
    found = sorted(span) if isinstance(span, dict) else type(span).__name__
    raise DataError(
        path,
        f"cannot tell the span keys: the first span has keys {found}, which match neither preset ({presets}); "
        "pass label_key, start_key and end_key (and value_key)",
        line=line,
    )


def _example(
    path: Path,
    line: int,
    record: dict[str, Any],
    text_field: str,
    spans_field: str,
    keys: tuple[str | None, ...],
    relations_field: str,
) -> Example:
    def fail(message: str) -> DataError:
        return DataError(path, message, line=line)

    text = record.get(text_field)
    if not isinstance(text, str):
        raise fail(f"field {text_field!r} must hold the text (a string); set text_field to the right field")
    spans = record.get(spans_field)
    if not isinstance(spans, list):
        raise fail(f"field {spans_field!r} must hold a list of spans ([] for none); set spans_field to the right field")
    label_key, value_key, start_key, end_key = keys
    entities = []
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
    raw_relations = record.get(relations_field)
    if raw_relations is None:
        raw_relations = []
    if not isinstance(raw_relations, list):
        raise fail(f"field {relations_field!r} must hold a list of relations {{head, tail, label}}")
    relations = [_relation(fail, k, r, entities) for k, r in enumerate(raw_relations)]
    rid = record["id"] if "id" in record else f"{path.name}:{line}"
    return Example(text, entities, relations, id=None if rid is None else str(rid))


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
