"""One way to read a text file for every reader: UTF-8, a byte-order mark stripped (and said once), and
errors that name the file and the line."""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from nerre.errors import DataError

log = logging.getLogger(__name__)

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
HEAD_BYTES = 1 << 20
"""How much of a file format detection reads (1 MiB)."""


def read_text(path: str | Path, quiet: bool = False) -> str:
    """The text of ``path`` decoded as UTF-8, without a leading byte-order mark (a warning says so, unless
    ``quiet``: format detection reads the file before its reader does, and the reader says it once).

    Raises:
        nerre.errors.DataError: when ``path`` is missing or a folder, or is not UTF-8 (naming the line).
    """
    path = _check_file(path)
    return _decode(path, _strip_bom(path, path.read_bytes(), quiet))


def read_head(path: str | Path, size: int = HEAD_BYTES) -> tuple[str, bool]:
    """The start of ``path`` (about ``size`` bytes, cut after its last whole line) and whether that is the
    whole file: what format detection reads, however large the file. Quiet about a byte-order mark.

    Raises:
        nerre.errors.DataError: as :func:`read_text`, for the part read.
    """
    path = _check_file(path)
    with path.open("rb") as f:
        data = f.read(size + 1)
    complete = len(data) <= size
    if not complete:
        data = data[:size]
        cut = data.rfind(b"\n")
        data = data[: cut + 1] if cut >= 0 else data
    data = _strip_bom(path, data, quiet=True)
    if complete or b"\n" in data:
        return _decode(path, data), complete
    try:  # one long line: a character cut at the end is left out
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=False), False
    except UnicodeDecodeError as e:
        raise _not_utf8(path, data, e, line=1) from e


def iter_lines(path: str | Path, quiet: bool = False) -> Iterator[str]:
    """The lines of ``path`` one at a time (UTF-8, without their ``\\n``; only ``\\n`` ends a line, so line
    numbers match an editor's), read as they are needed: memory stays flat however large the file.
    A leading byte-order mark is dropped as :func:`read_text` drops it.

    Raises:
        nerre.errors.DataError: when ``path`` is missing or a folder, or a line is not UTF-8 (naming it).
    """
    path = _check_file(path)
    with path.open("rb") as f:
        for number, data in enumerate(f, start=1):
            if number == 1:
                data = _strip_bom(path, data, quiet)
            if data.endswith(b"\n"):
                data = data[:-1]
            try:
                yield data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(path, data, e, line=number) from e


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"file {'is a folder' if path.is_dir() else 'does not exist'}; check the path")
    return path


def _strip_bom(path: Path, data: bytes, quiet: bool) -> bytes:
    if data.startswith(codecs.BOM_UTF8):
        if not quiet:
            log.warning("%s: starts with a UTF-8 byte-order mark; ignored", path)
        return data[len(codecs.BOM_UTF8):]
    if data.startswith(_UTF16_BOMS):
        raise DataError(path, "the file is UTF-16 text; re-save it as UTF-8")
    return data


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, data, e, line=data.count(b"\n", 0, e.start) + 1) from e


def _not_utf8(path: Path, data: bytes, error: UnicodeDecodeError, line: int) -> DataError:
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    message = f"not UTF-8 text (byte 0x{data[error.start]:02x} at column {column}); re-save the file as UTF-8"
    return DataError(path, message, line=line)


def json_error(error: ValueError | RecursionError) -> str:
    """What the JSON decoder found wrong, with the column (and line, for multi-line documents)."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if not isinstance(error, json.JSONDecodeError):
        return str(error)
    message = error.msg.removesuffix(" at")  # "Invalid control character at" would read "at at column"
    where = f"line {error.lineno} column {error.colno}" if error.doc.count("\n") else f"column {error.colno}"
    return f"{message} at {where}"
