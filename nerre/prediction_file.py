"""Prediction JSONL written as it comes, and resumed after an interruption.

``nerre predict`` appends each record to ``OUTPUT.partial`` as soon as its text is done and renames the file
to ``OUTPUT`` when the last one is written: an interrupted run (an error, Ctrl-C, a killed process) leaves
what it had finished in the ``.partial`` file. With ``--resume true`` the next run checks those records
against the input (same ids and texts, in order), drops a last line that was cut off, skips the texts they
cover and appends the rest: the final file is the one an uninterrupted run writes.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerre.atomic import ordinary_mode
from nerre.errors import DataError
from nerre.example import Example

log = logging.getLogger(__name__)


def unscored(record: Any) -> Any:
    """A prediction record (or a list of them) without its ``score`` fields: they hold float noise that
    batching and merged weights change, while the entities and relations must not change at all."""
    if isinstance(record, list):
        return [unscored(r) for r in record]
    if isinstance(record, dict):
        return {k: unscored(v) for k, v in record.items() if k != "score"}
    return record


def partial_path(path: str | Path) -> Path:
    """Where the records of an unfinished prediction run are: ``OUTPUT.partial``."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


@dataclass
class Tally:
    """What a prediction file holds, counted record by record (the summary of ``nerre predict``)."""

    examples: int = 0
    entities: int = 0
    relations: int = 0
    defects: Counter = field(default_factory=Counter)

    def add(self, record: dict[str, Any]) -> None:
        """Count one prediction record."""
        self.examples += 1
        self.entities += len(record.get("entities") or [])
        self.relations += len(record.get("relations") or [])
        self.defects.update(record.get("defects") or {})


def record_line(record: dict[str, Any]) -> str:
    """One prediction record as its JSONL line (without the newline)."""
    return json.dumps(record, ensure_ascii=False)


def check_partial(partial: Path, inputs: Iterator[Example],
                  on_record: Callable[[dict[str, Any], Example], None]) -> int:
    """Check the records of ``partial`` against the next inputs, consuming one input per record, and call
    ``on_record`` with each and its input; returns the byte length of the records kept (a last line cut off is dropped).

    Raises:
        nerre.errors.DataError: for a damaged record, or one that is not the prediction of its input (the
            file was written for another input): naming the line, and what to do.
    """
    kept = 0
    with partial.open("rb") as f:
        for number, data in enumerate(f, start=1):
            if not data.endswith(b"\n"):  # the write of this record was cut off: predicted again
                log.warning("%s:%d: the last record was cut off; it is predicted again", partial, number)
                break
            try:
                record = json.loads(data)
            except ValueError:
                raise DataError(partial, "not a prediction record (damaged file); delete the file, or run without "
                                         "--resume to predict everything again", line=number) from None
            example = next(inputs, None)
            if example is None or not isinstance(record, dict) or \
                    (record.get("id"), record.get("text")) != (example.id, example.text):
                what = "the input has fewer texts" if example is None else f"the input's text {number} is {example.id!r}"
                raise DataError(partial, f"this record is not the prediction of the input ({what}): the file was "
                                         "written for another input; delete it, or run without --resume",
                                line=number)
            on_record(record, example)
            kept += len(data)
    return kept


def write_as_you_go(lines: Iterable[tuple[str, dict[str, Any]]], path: Path, keep: int | None = None,
                    on_record: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Append each ``(line, record)`` to ``path.partial`` as it comes; rename it to ``path`` when complete.

    Args:
        lines: the JSONL lines (without newline) and the records they hold.
        path: the prediction file to write.
        keep: resume: keep the first ``keep`` bytes of the existing ``.partial`` file (from
            :func:`check_partial`) and append after them; None: start a new file.
        on_record: called with each record once it is written.
    """
    partial = partial_path(path)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("r+b" if keep is not None else "wb") as out:
        if keep is not None:
            out.truncate(keep)
            out.seek(keep)
        else:
            os.chmod(partial, ordinary_mode())
        for line, record in lines:
            out.write(line.encode("utf-8") + b"\n")
            out.flush()  # what is written stays written, whatever happens next
            if on_record is not None:
                on_record(record)
        os.fsync(out.fileno())
    os.replace(partial, path)
    return path
