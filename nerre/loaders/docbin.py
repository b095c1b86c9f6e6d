"""spaCy ``.spacy`` files (``DocBin``) in and out, through :mod:`nerre.spacy_export`.

Entities come from ``doc.spans[spans_key]`` (default ``nerre``, where nerre keeps nested entities), else
``doc.ents``; relations from ``doc._.relations`` (what nerre stores in ``doc.user_data``); tokens from the
Doc. Writing goes through :func:`nerre.spacy_export.to_docs`: an entity that does not align with the tokens
cannot be a span, and is counted with the relations it takes along.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nerre.errors import DataError
from nerre.example import Entity, Example, Relation, Token
from nerre.loaders.options import ReadNotes


def read_docbin(path: str | Path, spans_key: str | None = None, notes: ReadNotes | None = None) -> list[Example]:
    """Read a ``.spacy`` file written by nerre or by spaCy's own tools.

    Args:
        path: the file.
        spans_key: the ``doc.spans`` key holding the entities (default ``nerre`` when present, else ``doc.ents``).
        notes: collects what was converted or skipped.

    Raises:
        DataError: for a missing file, a file that is not a DocBin, or a ``spans_key`` absent from a Doc.
    """
    from nerre.spacy_export import SPANS_KEY, ExportReport, load_docbin, span_scores

    path = Path(path)
    notes = ReadNotes() if notes is None else notes
    if not path.is_file():
        raise DataError(path, f"file {'is a folder' if path.is_dir() else 'does not exist'}; check the path")
    try:
        docs = load_docbin(path)
    except Exception as err:  # msgpack and spaCy raise many kinds of errors for a file that is not a DocBin
        raise DataError(path, f"not a spaCy DocBin file ({type(err).__name__}: {err})") from None
    examples = []
    for i, doc in enumerate(docs):
        where = f"{path.name}:{i}"
        if spans_key is not None and spans_key not in doc.spans:
            raise DataError(path, f"doc {i} has no doc.spans[{spans_key!r}] (its span keys: "
                            f"{', '.join(doc.spans) or 'none'}); set the reader option spans_key", record=i)
        key = spans_key or (SPANS_KEY if SPANS_KEY in doc.spans else None)
        spans = doc.spans[key] if key is not None else doc.ents
        entities = {Entity(s.start_char, s.end_char, s.label_) for s in spans}
        scores = span_scores(doc, key) if key is not None else {}
        relations = []
        for triple in doc._.relations:
            head, label, tail = triple
            relation = Relation(*(Entity(s.start_char, s.end_char, s.label_) for s in (head, tail)), label)
            if relation.head in entities and relation.tail in entities:
                relations.append(relation)
                if getattr(triple, "score", None) is not None:
                    scores[relation] = triple.score
            else:
                notes.add("relations skipped: an argument is not among the entities read", where)
        lost = ExportReport.from_docs([doc])
        if lost.unaligned:
            notes.add("entities were not in the file: they did not align with the tokens when it was written",
                      where, n=len(lost.unaligned))
        tokens = [Token(t.idx, t.idx + len(t.text)) for t in doc if not t.text.isspace()]
        rid = doc._.nerre_id
        examples.append(Example(doc.text, sorted(entities), relations, tokens, rid if rid is not None else where,
                                scores, doc._.nerre_score))
    if not examples:
        raise DataError(path, "the DocBin holds no docs")
    return examples


def write_docbin(examples: Iterable[Example], path: str | Path) -> ReadNotes:
    """Write ``examples`` as a ``.spacy`` file (``doc.ents``, ``doc.spans["nerre"]``, ``doc._.relations``)."""
    from nerre.spacy_export import save_docbin, to_docs

    docs, report = to_docs(examples)
    save_docbin(docs, path)
    notes = ReadNotes()
    for rid, entity in report.unaligned:
        notes.add("entities not written: they do not align with the tokens", f"{rid} {entity}")
    for rid, relation in report.dropped_relations:
        notes.add("relations not written: an argument did not align with the tokens", f"{rid} {relation.label}")
    return notes
