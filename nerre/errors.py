"""The one error type for bad input files: it names the file, the line or record, and what to do."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data.

    Args:
        path: the file (or dataset) that holds the problem.
        message: what is wrong and, where possible, what to do about it.
        line: 1-based line number, for line-oriented files.
        record: record index or id, for JSON lists and datasets.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None, record: int | str | None = None):
        self.path, self.line, self.record, self.message = str(path), line, record, message
        where = self.path
        if line is not None:
            where += f":{line}"
        if record is not None:
            where += f": record {record}"
        super().__init__(f"{where}: {message}")


class ConfigError(ValueError):
    """A setting that cannot work: an unknown label, a missing file, an impossible combination."""


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception of a chain (jsonargparse wraps errors raised while building objects)."""
    while err.__cause__ is not None or (err.__context__ is not None and not err.__suppress_context__):
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return err
