"""Files that matter are written whole or not at all, with ordinary permissions.

Each writer writes a temporary file (or folder) beside its target, then renames it into place: an
interrupted run leaves the previous version or nothing, never half a file. Temporary files get the
permissions an ordinary ``open`` would give (``0666`` less the umask), not ``0600``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


def ordinary_mode(folder: bool = False) -> int:
    """The permissions ``open`` (or ``mkdir``) gives a new file (folder) under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask


def make_readable(folder: str | Path) -> None:
    """Give every file under ``folder`` ordinary permissions (some writers create them ``0600``)."""
    folder = Path(folder)
    folder.chmod(ordinary_mode(folder=True))
    for path in folder.rglob("*"):
        path.chmod(ordinary_mode(folder=path.is_dir()))


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", keep_partial: str | Path | None = None,
                **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path``.

    Args:
        path: the file to write.
        mode: ``w`` (text; ``encoding`` defaults to UTF-8) or ``wb``.
        keep_partial: on an error, move what was written there instead of deleting it.
        kwargs: passed to ``open``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with open(temp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, ordinary_mode())
        os.replace(temp, path)
    except BaseException:
        if keep_partial is not None and os.path.exists(temp):
            os.chmod(temp, ordinary_mode())
            os.replace(temp, keep_partial)
        elif os.path.exists(temp):
            os.remove(temp)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", newline="\n") as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A scratch folder beside ``path``; on success it takes the place of ``path`` (an older one is removed).

    The swap is two renames (old aside, new in): at no moment does ``path`` hold a mix of both.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield scratch
        make_readable(scratch)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            old.rmdir()
            path.rename(old)
        scratch.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
