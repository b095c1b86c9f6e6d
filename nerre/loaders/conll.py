"""CoNLL column files: one token per line, blank lines between sentences, ``-DOCSTART-`` lines skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from nerre.errors import ConfigError, DataError
from nerre.example import NO_SPACE_SCRIPTS, Example, written_without_spaces
from nerre.loaders.options import ReadNotes
from nerre.loaders.tags import TagError, announce_scheme, detect_scheme, normalize_scheme, spans_from_tags
from nerre.loaders.textfile import iter_lines

DOCSTART = "-DOCSTART-"


@dataclass
class _Sentence:
    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # 1-based line of each token


def read_conll(
    path: str | Path,
    scheme: str = "auto",
    tag_column: int = -1,
    separator: str | None = None,
    text_column: int = 0,
    join: str = "auto",
    tag_errors: str = "raise",
    notes: ReadNotes | None = None,
) -> list[Example]:
    """Read a CoNLL-style column file (CoNLL-2003, 2-column ``token tag`` files, TSV, BMES ...).

    Args:
        path: the file.
        scheme: ``auto`` (detect from the whole file), ``iob1``, ``iob2`` or ``bioes``/``bilou``/``bmes``.
        tag_column: index of the tag column (negative counts from the end).
        separator: column separator; None detects it: tab if the first token line has a tab, else any whitespace.
        text_column: index of the token column.
        join: ``space``, ``none`` (character-level files of scripts without spaces) or ``auto``.
        tag_errors: ``raise`` or ``drop`` (leave out the entities a bad tag sequence breaks, counted).
        notes: collects what was decided and dropped.

    Returns:
        One :class:`Example` per sentence, id ``"{file name}:{first line of the sentence}"``.

    Raises:
        DataError: naming ``file:line`` for a missing file, a wrong column count, or a bad tag.
    """
    path = Path(path)
    held = list(_iter_sentences(path, tag_column, separator, text_column, quiet=False))  # the file, read once
    return list(_examples(path, lambda quiet: iter(held), scheme, join, tag_errors, notes))


def iter_conll(
    path: str | Path,
    scheme: str = "auto",
    tag_column: int = -1,
    separator: str | None = None,
    text_column: int = 0,
    join: str = "auto",
    tag_errors: str = "raise",
    notes: ReadNotes | None = None,
) -> Iterator[Example]:
    """:func:`read_conll`, one sentence at a time: memory stays flat however large the file. With
    ``scheme="auto"`` (or ``join="auto"``) a first pass over the file reads the tags (or words) alone."""
    path = Path(path)
    return _examples(path, lambda quiet: _iter_sentences(path, tag_column, separator, text_column, quiet), scheme,
                     join, tag_errors, notes)


def _examples(path: Path, sentences: Callable[[bool], Iterator[_Sentence]], scheme: str, join: str = "auto",
              tag_errors: str = "raise", notes: ReadNotes | None = None) -> Iterator[Example]:
    """The examples of the sentences that ``sentences(quiet)`` gives, each call from the start (``quiet``: for
    the passes that only tell the scheme; the pass that makes the examples says what reading found)."""
    notes = ReadNotes() if notes is None else notes
    if scheme != "auto":
        scheme = normalize_scheme(scheme)
    if join not in ("auto", "space", "none"):
        raise ConfigError(f"join={join!r}: choose space, none or auto")
    if tag_errors not in ("raise", "drop"):
        raise ConfigError(f"tag_errors={tag_errors!r}: choose raise or drop")
    if scheme == "auto":
        scheme = detect_scheme(s.tags for s in sentences(True))
        announce_scheme(scheme, (s.tags for s in sentences(True)),
                        lambda i, k: f"{path}:{next(islice(sentences(True), i, None)).lines[k]}")
    joiner = _joiner(sentences, join, notes)
    empty = True
    for sentence in sentences(False):
        empty = False
        dropped: list[TagError] | None = [] if tag_errors == "drop" else None
        try:
            spans = spans_from_tags(sentence.tags, scheme, dropped)
        except TagError as e:
            line = sentence.lines[e.position]
            hint = "" if dropped is not None else "; or read with tag_errors=drop to leave such entities out, counted"
            raise DataError(path, f"{e.reason} (tag {e.tag!r}, scheme {scheme}){hint}", line=line) from e
        for error in dropped or []:
            notes.add("entities left out: their tags break the scheme (tag_errors=drop)",
                      f"{path.name}:{sentence.lines[error.position]}")
        yield Example.from_tokens(sentence.words, spans, id=f"{path.name}:{sentence.lines[0]}", joiner=joiner)
    if empty:
        raise DataError(path, "the file holds no sentences; expected one token per line, blank lines between sentences")


def _joiner(sentences: Callable[[bool], Iterator[_Sentence]], join: str, notes: ReadNotes) -> str:
    """The string between tokens: ``" "``, or ``""`` for a character-level file of a script without spaces."""
    if join == "space":
        return " "
    if join == "none":
        notes.say("tokens joined without spaces (join=none)")
        return ""
    total = without = 0
    for sentence in sentences(True):
        for word in sentence.words:
            if len(word) != 1:
                return " "
            total += 1
            without += written_without_spaces(word)
    if 2 * without > total:
        notes.say(f"tokens joined without spaces: every token is one character and most are of scripts written "
                  f"without spaces ({', '.join(NO_SPACE_SCRIPTS)}); set join=space to override")
        return ""
    return " "


def _read_lines(path: Path, quiet: bool) -> Iterator[str]:
    if not path.exists() and not path.suffix:
        raise DataError(path, "file does not exist; check the path (for a Hugging Face hub dataset pass format='hf')")
    for line in iter_lines(path, quiet):  # only newlines end lines, so line numbers match an editor's
        yield line[:-1] if line.endswith("\r") else line


def _iter_sentences(path: Path, tag_column: int, separator: str | None, text_column: int,
                    quiet: bool) -> Iterator[_Sentence]:
    current = _Sentence()
    n_columns = first_line = 0
    for number, line in enumerate(_read_lines(path, quiet), start=1):
        if not line.strip():
            if current.words:
                yield current
                current = _Sentence()
            continue
        if line.split()[0] == DOCSTART:
            if current.words:
                yield current
                current = _Sentence()
            continue
        if n_columns == 0 and separator is None:
            separator = "\t" if "\t" in line else ""
        fields = [f.strip() for f in line.split(separator)] if separator else line.split()
        if n_columns == 0:
            n_columns, first_line = len(fields), number
            _check_columns(path, number, n_columns, tag_column, text_column)
        elif len(fields) != n_columns:
            raise DataError(
                path,
                f"expected {n_columns} columns (as on line {first_line}), found {len(fields)}; every token line "
                "needs the same columns (check the separator, or a missing/extra field)",
                line=number,
            )
        word = fields[text_column]
        if not word:
            message = f"empty token in column {text_column}; remove the line or fill in the token"
            raise DataError(path, message, line=number)
        current.words.append(word)
        current.tags.append(fields[tag_column])
        current.lines.append(number)
    if current.words:
        yield current


def _check_columns(path: Path, line: int, n_columns: int, tag_column: int, text_column: int) -> None:
    if n_columns < 2:
        raise DataError(path, "a token line needs at least 2 columns (token and tag), found 1", line=line)
    for name, column in (("tag_column", tag_column), ("text_column", text_column)):
        if not -n_columns <= column < n_columns:
            message = f"{name}={column} is out of range for {n_columns} columns; pick another column"
            raise DataError(path, message, line=line)
    if tag_column % n_columns == text_column % n_columns:
        raise DataError(path, f"tag_column={tag_column} and text_column={text_column} name the same column", line=line)
