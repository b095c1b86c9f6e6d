"""Read corpora into :class:`~nerre.example.Example` lists, write them back, and convert between formats.

Formats (reader and writer each): ``conll`` (column files), ``spert`` (SpERT JSON), ``jsonl`` (character
offsets, one record per line; also nerre's prediction files), ``json`` (a JSON list of the same records, e.g.
Presidio's), ``hf`` (Hugging Face token-classification datasets), ``brat`` (standoff ``.txt`` + ``.ann``),
``doccano`` (JSONL exports), ``labelstudio`` (JSON exports) and ``spacy`` (``.spacy`` DocBin files). Formats
are detected from the content (:mod:`nerre.loaders.detect`); options are :class:`ReaderOptions`; what a
reader converts or skips and what a writer cannot carry is counted in :class:`ReadNotes`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerre.errors import ConfigError, DataError
from nerre.example import Entity, Example, Relation, Token
from nerre.loaders.brat import read_brat, write_brat
from nerre.loaders.conll import iter_conll, read_conll
from nerre.loaders.detect import candidates, no_format_error
from nerre.loaders.docbin import read_docbin, write_docbin
from nerre.loaders.doccano import read_doccano, write_doccano
from nerre.loaders.hf import read_hf
from nerre.loaders.jsonl import iter_jsonl, read_json, read_jsonl, write_json, write_jsonl
from nerre.loaders.labelstudio import read_labelstudio, write_labelstudio
from nerre.loaders.options import NO_OPTIONS, ReaderOptions, ReadNotes
from nerre.loaders.spans import CHARACTER_FORMATS, normalize_spans
from nerre.loaders.spert import read_spert
from nerre.loaders.tokenwise import write_conll, write_hf, write_spert

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

FORMATS = ("conll", "spert", "jsonl", "json", "hf", "brat", "doccano", "labelstudio", "spacy")

_READERS: dict[str, Callable[..., list[Example]]] = {
    "conll": read_conll,
    "spert": read_spert,
    "jsonl": read_jsonl,
    "json": read_json,
    "hf": read_hf,
    "brat": read_brat,
    "doccano": read_doccano,
    "labelstudio": read_labelstudio,
    "spacy": read_docbin,
}
_WRITERS: dict[str, Callable[..., Any]] = {
    "conll": write_conll,
    "spert": write_spert,
    "jsonl": write_jsonl,
    "json": write_json,
    "hf": write_hf,
    "brat": write_brat,
    "doccano": write_doccano,
    "labelstudio": write_labelstudio,
    "spacy": write_docbin,
}
_STREAMING: dict[str, Callable[..., Iterator[Example]]] = {"conll": iter_conll, "jsonl": iter_jsonl}
STREAMED = ("text", *_STREAMING)
"""The formats read one example at a time (``text``: raw text, one document per line, for ``nerre predict``)."""
_SUFFIXES = {".jsonl": "jsonl", ".spacy": "spacy", ".conll": "conll", ".ann": "brat"}
_NO_SCORES = ("conll", "spert", "hf")
"""Formats that cannot hold prediction scores (doccano holds the document's: its writer says what it leaves)."""

__all__ = [
    "FORMATS",
    "STREAMED",
    "ReadNotes",
    "ReaderOptions",
    "convert",
    "detect_format",
    "from_dataset",
    "load_examples",
    "option_names",
    "read_brat",
    "read_conll",
    "read_docbin",
    "read_doccano",
    "read_hf",
    "read_json",
    "read_jsonl",
    "read_labelstudio",
    "read_spert",
    "stream_examples",
    "to_dataset",
    "write_examples",
    "write_json",
    "write_jsonl",
]


def option_names(format: str) -> list[str]:
    """The :class:`ReaderOptions` the reader of ``format`` takes."""
    parameters = list(inspect.signature(_READERS[format]).parameters)[1:]
    return [p for p in parameters if p != "notes"] + (["trim_spans"] if format in CHARACTER_FORMATS else [])


def detect_format(path: str | Path, options: ReaderOptions | dict[str, Any] | None = None,
                  allow_text: bool = False) -> str:
    """The format of ``path``, judged by its content (see :mod:`nerre.loaders.detect`).

    Reader options that only some formats take narrow the choice (``label_key`` means jsonl or json).

    Args:
        path: a file or folder.
        options: the reader options that will be used.
        allow_text: return ``"text"`` for raw text (what ``nerre predict`` reads) instead of failing.

    Raises:
        DataError: for a missing path, and for content that fits no format or several, listing the
            candidates and saying to choose with ``--format``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "does not exist; check the path (a Hugging Face hub dataset needs --format hf)")
    found, seen, fallback = candidates(path)
    given = ReaderOptions.of(options).given()
    if given:
        fits = lambda f: f in _READERS and set(given) <= set(option_names(f))  # noqa: E731
        found = [f for f in found if fits(f)] or [f for f in fallback if fits(f)] or found
    if not allow_text:
        found = [f for f in found if f != "text"]
    if len(found) == 1:
        return found[0]
    if not found:
        raise no_format_error(path, seen, list(FORMATS))
    raise DataError(path, f"could be read as {' or '.join(found)} ({seen}); choose with --format "
                    f"{' or --format '.join(found)}")


def load_examples(path: str | Path, format: str | None = None, options: ReaderOptions | dict[str, Any] | None = None,
                  notes: ReadNotes | None = None, **more: Any) -> list[Example]:
    """Read ``path`` with the reader of ``format`` (detected from the content when None).

    Args:
        path: the file or folder.
        format: one of :data:`FORMATS`.
        options: :class:`ReaderOptions` (or a dict of them); keyword arguments are added to them (e.g.
            ``scheme="iob1"`` for ``conll``, ``split="test"`` for ``hf``).
        notes: collects what the reader converted or skipped; when None, that is logged as one warning line.

    Raises:
        nerre.errors.ConfigError: for an unknown format, or an option the format does not take.
        nerre.errors.DataError: for bad data, or content whose format cannot be told.
    """
    options = ReaderOptions.of(options, **more)
    fmt = format.lower() if format else detect_format(path, options)
    reader, given = _reader(path, fmt, options, _READERS)
    collected = ReadNotes() if notes is None else notes
    trim = given.pop("trim_spans", True)
    if "notes" in inspect.signature(reader).parameters:
        given["notes"] = collected
    examples = reader(path, **given)
    if fmt in CHARACTER_FORMATS:
        examples = normalize_spans(examples, collected, trim)
    if notes is None and collected:
        log.warning("%s (%s): %s", path, fmt, collected)
    return examples


def stream_examples(path: str | Path, format: str | None = None,
                    options: ReaderOptions | dict[str, Any] | None = None) -> Iterator[Example]:
    """:func:`load_examples`, one example at a time where the format allows (:data:`STREAMED`: memory stays
    flat however large the file); the other formats are read whole first (one JSON document, a folder ...)."""
    options = ReaderOptions.of(options)
    fmt = format.lower() if format else detect_format(path, options)
    if fmt not in _STREAMING:
        return iter(load_examples(path, fmt, options))
    reader, given = _reader(path, fmt, options, _STREAMING)  # a wrong option fails now, not at the first example
    trim = given.pop("trim_spans", True)
    notes = ReadNotes()
    if "notes" in inspect.signature(reader).parameters:
        given["notes"] = notes
    return _said(path, fmt, reader(path, **given), notes, trim)


def _said(path: str | Path, fmt: str, examples: Iterator[Example], notes: ReadNotes, trim: bool) -> Iterator[Example]:
    """``examples`` as they stream, spans normalised where people drew them; what reading converted is logged
    as one warning line at the end, as :func:`load_examples` does."""
    for example in examples:
        yield normalize_spans([example], notes, trim)[0] if fmt in CHARACTER_FORMATS else example
    if notes:
        log.warning("%s (%s): %s", path, fmt, notes)


def _reader(path: str | Path, fmt: str, options: ReaderOptions,
            readers: dict[str, Callable[..., Any]]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The reader of ``fmt`` and the options it is given; errors for an unknown format or option."""
    if fmt not in _READERS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    given = options.given()
    accepted = option_names(fmt)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{path}: reader option(s) {', '.join(unknown)} do not apply to format {fmt!r}; "
            f"it takes {', '.join(accepted) if accepted else 'no options'}"
        )
    return readers[fmt], given


def output_format(path: str | Path, to: str | None = None) -> str:
    """The format to write ``path`` in: ``to``, else told by the suffix (``.jsonl``, ``.spacy``, ``.conll``).

    Raises:
        nerre.errors.ConfigError: for an unknown format, or a path whose suffix does not tell.
    """
    if to is not None:
        if to.lower() not in _WRITERS:
            raise ConfigError(f"unknown output format {to!r}; choose one of {', '.join(FORMATS)}")
        return to.lower()
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"cannot tell the output format of {path} from its name; choose one with --to: "
                          f"{', '.join(FORMATS)}")
    return _SUFFIXES[suffix]


def write_examples(examples: Iterable[Example], path: str | Path, format: str, **settings: Any) -> ReadNotes:
    """Write ``examples`` to ``path`` in ``format``; returns what the format could not carry.

    ``settings`` go to the writer (``predictions=True`` for ``labelstudio`` pre-annotations).
    """
    fmt = output_format(path, format)
    examples = list(examples)
    notes = _WRITERS[fmt](examples, path, **settings)
    notes = notes if isinstance(notes, ReadNotes) else ReadNotes()
    if fmt in _NO_SCORES:
        scored = sum(len(ex.scores) + (ex.score is not None) for ex in examples)
        if scored:
            notes.add(f"scores not written ({fmt} holds none; jsonl, json, labelstudio, spacy and brat do)", n=scored)
    return notes


def convert(source: str | Path, target: str | Path, to: str | None = None, format: str | None = None,
            options: ReaderOptions = NO_OPTIONS) -> dict[str, Any]:
    """Read ``source`` and write it to ``target`` in another format; a summary of what was read, converted
    on reading, and could not be carried into the target format."""
    fmt_out = output_format(target, to)
    read_notes = ReadNotes()
    fmt_in = format or detect_format(source, options)
    examples = load_examples(source, fmt_in, options, notes=read_notes)
    lost = write_examples(examples, target, fmt_out)
    return {
        "from": fmt_in,
        "to": fmt_out,
        "examples": len(examples),
        "entities": sum(len(ex.entities) for ex in examples),
        "relations": sum(len(ex.relations) for ex in examples),
        "output": str(target),
        "converted on reading": read_notes.lines(),
        "not carried over": lost.lines(),
    }


def to_dataset(examples: Iterable[Example]) -> datasets.Dataset:
    """A ``datasets.Dataset`` with columns id, text, tokens (``[start, end]`` pairs), entities
    (``{start, end, label}``) and relations (``{head, tail, label}``, head/tail indexing the entities)."""
    import datasets

    columns: dict[str, list[Any]] = {"id": [], "text": [], "tokens": [], "entities": [], "relations": []}
    for example in examples:
        record = example.to_dict()
        columns["id"].append(example.id)
        columns["text"].append(example.text)
        columns["tokens"].append([[t.start, t.end] for t in example.tokens or []])
        columns["entities"].append([{k: e[k] for k in ("start", "end", "label")} for e in record["entities"]])
        columns["relations"].append(record["relations"])
    span = {"start": datasets.Value("int64"), "end": datasets.Value("int64"), "label": datasets.Value("string")}
    relation = {"head": datasets.Value("int64"), "tail": datasets.Value("int64"), "label": datasets.Value("string")}
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "tokens": datasets.List(datasets.List(datasets.Value("int64"), length=2)),
            "entities": datasets.List(span),
            "relations": datasets.List(relation),
        }
    )
    return datasets.Dataset.from_dict(columns, features=features)


def from_dataset(ds: datasets.Dataset) -> list[Example]:
    """The inverse of :func:`to_dataset`."""
    examples = []
    columns = (ds[name] for name in ("id", "text", "tokens", "entities", "relations"))
    for rid, text, token_rows, entity_rows, relation_rows in zip(*columns):
        entities = [Entity(e["start"], e["end"], e["label"]) for e in entity_rows]
        relations = [Relation(entities[r["head"]], entities[r["tail"]], r["label"]) for r in relation_rows]
        tokens = [Token(start, end) for start, end in token_rows]
        examples.append(Example(text, entities, relations, tokens, rid))
    return examples
