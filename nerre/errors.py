"""The errors a user can cause: one family, one home.

Everything a user can get wrong (a bad file, a setting that cannot work, an unusable adapter) raises a
:class:`NerreError`. Its message is one line that names the file, the line or record, what is wrong and what
to do; the ``nerre`` command prints it as ``nerre: error: MESSAGE`` and exits with status 2, and the Python
API raises the same error with the same text. Anything else that escapes is a bug in nerre.
"""

from __future__ import annotations

from pathlib import Path


class NerreError(Exception):
    """Something the user can fix: the message says what and how."""


class DataError(NerreError, ValueError):
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


class ConfigError(NerreError, ValueError):
    """A setting that cannot work: an unknown label, an impossible combination, a bad option."""


class MissingPathError(ConfigError, FileNotFoundError):
    """A setting names a file or folder that does not exist (or is the wrong kind)."""


class AdapterError(NerreError, ValueError):
    """An adapter folder that cannot be loaded: missing or corrupt files, or a base model it does not fit.

    Args:
        path: the adapter folder.
        message: what is wrong and what to do.
    """

    def __init__(self, path: str | Path, message: str):
        self.path, self.message = str(path), message
        super().__init__(f"{path}: {message}")


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception of a chain (jsonargparse wraps errors raised while building objects)."""
    while err.__cause__ is not None or (err.__context__ is not None and not err.__suppress_context__):
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return err


def user_error(err: BaseException) -> NerreError | None:
    """The :class:`NerreError` in ``err``'s chain of causes, if any (the outermost one)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, NerreError):
            return err
        seen.add(id(err))
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)  # type: ignore[assignment]
    return None
