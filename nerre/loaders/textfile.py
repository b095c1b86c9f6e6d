"""One way to read a text file for every reader: UTF-8, a byte-order mark stripped (and said once), and
errors that name the file and the line."""

from __future__ import annotations

import codecs
import json
import logging
from pathlib import Path

from nerre.errors import DataError

log = logging.getLogger(__name__)

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def read_text(path: str | Path, quiet: bool = False) -> str:
    """The text of ``path`` decoded as UTF-8, without a leading byte-order mark (a warning says so, unless
    ``quiet``: format detection reads the file before its reader does, and the reader says it once).

    Raises:
        nerre.errors.DataError: when ``path`` is missing or a folder, or is not UTF-8 (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"file {'is a folder' if path.is_dir() else 'does not exist'}; check the path")
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        if not quiet:
            log.warning("%s: starts with a UTF-8 byte-order mark; ignored", path)
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith(_UTF16_BOMS):
        raise DataError(path, "the file is UTF-16 text; re-save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            path, f"not UTF-8 text (byte 0x{data[e.start]:02x} at column {column}); re-save the file as UTF-8",
            line=line,
        ) from e


def json_error(error: ValueError | RecursionError) -> str:
    """What the JSON decoder found wrong, with the column (and line, for multi-line documents)."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if not isinstance(error, json.JSONDecodeError):
        return str(error)
    message = error.msg.removesuffix(" at")  # "Invalid control character at" would read "at at column"
    where = f"line {error.lineno} column {error.colno}" if error.doc.count("\n") else f"column {error.colno}"
    return f"{message} at {where}"
