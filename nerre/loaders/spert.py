"""SpERT JSON: a list of ``{tokens, entities: [{type, start, end}], relations: [{type, head, tail}], orig_id}``.

Entity ``start``/``end`` are token indices (end exclusive); relation ``head``/``tail`` index the sentence's
``entities`` list, which is not always in position order (ADE). Relations are built from that original list
before :class:`Example` sorts the entities, so they keep pointing at the right mentions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nerre.errors import DataError
from nerre.example import Example
from nerre.loaders.textfile import json_error, read_text

_REQUIRED = ("tokens", "entities", "relations")


def read_spert(path: str | Path) -> list[Example]:
    """Read a SpERT-format JSON file (CoNLL04, ADE, SciERC as distributed by SpERT).

    Returns:
        One :class:`Example` per sentence; its id is ``orig_id`` when present, else ``"{file name}:{index}"``.

    Raises:
        DataError: naming the file and record index for a missing file, broken JSON, a top level that is not a
            list, a record without ``tokens``/``entities``/``relations``, or a span/index out of range.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(
            path,
            f"the top level is a JSON {_json_type(data)}, but SpERT format is a JSON list of sentence objects "
            "({tokens, entities, relations}); for one JSON object per line use format 'jsonl'",
        )
    if not data:
        raise DataError(path, "the file holds an empty list; expected at least one sentence object")
    return [_example(path, i, record) for i, record in enumerate(data)]


def _load_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        line = e.lineno if isinstance(e, json.JSONDecodeError) else None
        raise DataError(path, f"not valid JSON: {json_error(e)}; fix the file", line=line) from None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _example(path: Path, index: int, record: Any) -> Example:
    def fail(message: str) -> DataError:
        return DataError(path, message, record=index)

    if not isinstance(record, dict):
        raise fail(f"expected a sentence object, found a JSON {_json_type(record)}")
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise fail(
            f"missing key(s) {', '.join(missing)}; every sentence needs tokens, entities and relations "
            "(use [] for none)"
        )
    tokens, entities, relations = (record[key] for key in _REQUIRED)
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise fail("'tokens' must be a list of non-empty strings")
    if not isinstance(entities, list) or not isinstance(relations, list):
        raise fail("'entities' and 'relations' must be lists")

    spans = []
    for k, entity in enumerate(entities):
        if not isinstance(entity, dict) or not all(key in entity for key in ("type", "start", "end")):
            raise fail(f"entity {k} must be an object with type, start and end")
        label, start, end = entity["type"], entity["start"], entity["end"]
        if not isinstance(label, str) or not label or not _is_int(start) or not _is_int(end):
            raise fail(f"entity {k} needs a non-empty string type and integer start/end, found {entity}")
        if not 0 <= start < end <= len(tokens):
            problem = "is empty" if start >= end else f"is out of range for {len(tokens)} tokens"
            raise fail(f"entity {k} span [{start}, {end}) {problem} (start/end are token indices, end exclusive)")
        spans.append((start, end, label))

    triples = []
    for k, relation in enumerate(relations):
        if not isinstance(relation, dict) or not all(key in relation for key in ("type", "head", "tail")):
            raise fail(f"relation {k} must be an object with type, head and tail")
        label, head, tail = relation["type"], relation["head"], relation["tail"]
        if not isinstance(label, str) or not label:
            raise fail(f"relation {k} needs a non-empty string type, found {label!r}")
        for role, value in (("head", head), ("tail", tail)):
            if not _is_int(value) or not 0 <= value < len(spans):
                raise fail(
                    f"relation {k} {role} {value!r} is not an index into the {len(spans)} entities of this "
                    "sentence (head/tail index the entities list)"
                )
        triples.append((head, tail, label))

    orig_id = record.get("orig_id")
    rid = f"{path.name}:{index}" if orig_id is None else str(orig_id)
    return Example.from_tokens(tokens, spans, triples, id=rid)
