"""Read corpora into :class:`~nerre.example.Example` lists, and convert them to/from ``datasets.Dataset``.

Formats: ``conll`` (column files), ``spert`` (SpERT JSON), ``jsonl`` (character offsets, also nerre's
prediction files) and ``hf`` (Hugging Face token-classification datasets).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerre.errors import ConfigError
from nerre.example import Entity, Example, Relation, Token
from nerre.loaders.conll import read_conll
from nerre.loaders.hf import read_hf
from nerre.loaders.jsonl import read_jsonl, write_jsonl
from nerre.loaders.spert import read_spert

if TYPE_CHECKING:
    import datasets

FORMATS = ("conll", "spert", "jsonl", "hf")

_READERS: dict[str, Callable[..., list[Example]]] = {
    "conll": read_conll,
    "spert": read_spert,
    "jsonl": read_jsonl,
    "hf": read_hf,
}

__all__ = [
    "FORMATS",
    "detect_format",
    "from_dataset",
    "load_examples",
    "read_conll",
    "read_hf",
    "read_jsonl",
    "read_spert",
    "to_dataset",
    "write_jsonl",
]


def detect_format(path: str | Path) -> str:
    """The format of ``path``: a folder is ``hf`` (``save_to_disk``), ``.json`` is ``spert``, ``.jsonl`` is
    ``jsonl``, anything else ``conll``."""
    path = Path(path)
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    return {".json": "spert", ".jsonl": "jsonl"}.get(suffix, "conll")


def load_examples(path: str | Path, format: str | None = None, **options: Any) -> list[Example]:
    """Read ``path`` with the reader of ``format`` (detected from the path when None).

    ``options`` go to the reader (e.g. ``scheme="iob1"`` for ``conll``, ``split="test"`` for ``hf``).

    Raises:
        nerre.errors.ConfigError: for an unknown format, or an option the reader does not take.
        nerre.errors.DataError: for bad data.
    """
    fmt = detect_format(path) if format is None else format.lower()
    if fmt not in _READERS:
        raise ConfigError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    reader = _READERS[fmt]
    accepted = list(inspect.signature(reader).parameters)[1:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{path}: format {fmt!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(accepted) if accepted else 'no options'} (data.reader_options)"
        )
    return reader(path, **options)


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
