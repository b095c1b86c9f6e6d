"""JSON records from a file that is either JSON Lines (one object per line) or one JSON list of objects, with
each record's place (line or index) for error messages. Shared by the JSON-based readers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerre.errors import DataError
from nerre.loaders.textfile import json_error, read_text


@dataclass(frozen=True)
class Record:
    """One JSON object of a file and where it is: ``line`` (JSON Lines) or ``index`` (a JSON list)."""

    data: Any
    line: int | None = None
    index: int | None = None

    def error(self, path: Path, message: str) -> DataError:
        """A DataError naming the file and this record's line or index."""
        return DataError(path, message, line=self.line, record=self.index)

    def where(self, path: Path) -> str:
        """``name:line`` (JSON Lines) or ``name:index`` (a JSON list): ids and summaries."""
        return f"{path.name}:{self.line if self.line is not None else self.index}"


def read_records(path: str | Path, layout: str | None = None, objects: bool = True,
                 quiet: bool = False) -> tuple[list[Record], str]:
    """The records of ``path`` and how the file holds them: ``"jsonl"`` or ``"json"``.

    Args:
        path: the file.
        layout: ``"jsonl"`` (one object per line), ``"json"`` (one JSON list) or None: a file whose first
            non-blank character is ``[`` is a JSON list, and anything else JSON Lines (a file holding a single
            JSON object, even over several lines, is one record).
        objects: require every record to be a JSON object.
        quiet: say nothing of a byte-order mark (for format detection, which reads before the reader).

    Raises:
        DataError: naming the line or record for broken JSON, a non-object record, or an empty file.
    """
    path = Path(path)
    text = read_text(path, quiet)
    stripped = text.lstrip()
    if not stripped:
        raise DataError(path, "the file holds no records")
    if layout is None and stripped.startswith("{") and _single_object(stripped):
        return _check([Record(json.loads(text), line=1)], path, objects), "jsonl"  # one record, maybe over lines
    layout = layout or ("json" if stripped.startswith("[") else "jsonl")
    if layout == "jsonl" and stripped.startswith("["):
        raise DataError(path, "the file is one JSON list, not JSON Lines (one object per line); read it with --format json")
    if layout == "json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            line = getattr(e, "lineno", None)
            raise DataError(path, f"not valid JSON: {json_error(e)}", line=line) from None
        records = [Record(x, index=i) for i, x in enumerate(data)] if isinstance(data, list) else [Record(data, index=0)]
    else:
        records = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                records.append(Record(json.loads(line), line=number))
            except (ValueError, RecursionError) as e:
                message = f"not valid JSON: {json_error(e)}; each line must be one JSON object"
                raise DataError(path, message, line=number) from None
    return _check(records, path, objects), layout


def _check(records: list[Record], path: Path, objects: bool) -> list[Record]:
    if not records:
        raise DataError(path, "the file holds no records")
    if objects:
        for record in records:
            if not isinstance(record.data, dict):
                raise record.error(path, f"expected a JSON object, found {json_type(record.data)}")
    return records


def _single_object(text: str) -> bool:
    """True when ``text`` (starting with ``{``) is one JSON object, not JSON Lines."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def json_type(value: Any) -> str:
    """``object``, ``list``, ``string``, ``number``, ``boolean`` or ``null``."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def is_int(value: Any) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)
