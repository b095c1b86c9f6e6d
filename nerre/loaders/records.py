"""JSON records from a file that is either JSON Lines (one object per line) or one JSON list of objects, with
each record's place (line or index) for error messages. Shared by the JSON-based readers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerre.errors import DataError
from nerre.loaders.textfile import iter_lines, json_error, read_head, read_text


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
    return records_from_text(path, read_text(path, quiet), layout, objects)


def records_from_text(path: Path, text: str, layout: str | None = None,
                      objects: bool = True) -> tuple[list[Record], str]:
    """:func:`read_records` of the text ``text`` of ``path``."""
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
        records = [_line_record(path, line, number)
                   for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
    return _check(records, path, objects), layout


def iter_lines_records(path: str | Path, quiet: bool = False) -> Iterator[Record]:
    """The records of a JSON Lines file, one JSON object per line, read as they are needed (memory stays flat
    however large the file); the same records and errors as ``read_records(path, "jsonl")``."""
    path = Path(path)
    seen = False
    for number, line in enumerate(iter_lines(path, quiet), start=1):
        if not line.strip():
            continue
        if not seen and line.lstrip().startswith("["):
            raise DataError(path, "the file is one JSON list, not JSON Lines (one object per line); read it with "
                                  "--format json")
        record = _line_record(path, line, number)
        if not isinstance(record.data, dict):
            raise record.error(path, f"expected a JSON object, found {json_type(record.data)}")
        seen = True
        yield record
    if not seen:
        raise DataError(path, "the file holds no records")


def head_records(path: str | Path, limit: int, head: tuple[str, bool] | None = None) -> tuple[list[Record], str]:
    """Up to ``limit`` records from the start of ``path`` (:func:`~nerre.loaders.textfile.read_head`), and the
    layout, for format detection: a large file is not read whole. Objects are not required; quiet about a
    byte-order mark. A file whose first record does not fit the part read is read whole. ``head``: what
    :func:`~nerre.loaders.textfile.read_head` gave, when the caller has read it already."""
    path = Path(path)
    text, complete = head or read_head(path)
    if complete:
        return records_from_text(path, text, objects=False)
    stripped = text.lstrip()
    if stripped.startswith("["):  # the first elements of one JSON list
        decoder, records, at = json.JSONDecoder(), [], 1
        while len(records) < limit:
            while at < len(stripped) and stripped[at] in " \t\r\n,":
                at += 1
            try:
                value, at = decoder.raw_decode(stripped, at)
            except (ValueError, RecursionError):
                break
            records.append(Record(value, index=len(records)))
        return (records, "json") if records else read_records(path, objects=False, quiet=True)
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                records.append(_line_record(path, line, number))
            except DataError:
                if not records:  # maybe one JSON object over many lines: the whole file says
                    return read_records(path, objects=False, quiet=True)
                raise
            if len(records) >= limit:
                break
    return records, "jsonl"


def _line_record(path: Path, line: str, number: int) -> Record:
    try:
        return Record(json.loads(line), line=number)
    except (ValueError, RecursionError) as e:
        message = f"not valid JSON: {json_error(e)}; each line must be one JSON object"
        raise DataError(path, message, line=number) from None


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
