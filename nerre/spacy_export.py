"""Export examples to spaCy: ``Doc`` objects, ``.spacy`` files (``DocBin``) and displaCy HTML.

An :class:`~nerre.example.Example` becomes a ``Doc`` whose text is exactly ``Example.text``:

* tokens come from ``Example.tokens`` (whitespace between them that is not a single space becomes
  whitespace tokens, as spaCy's tokenizer does), or from ``nlp``'s tokenizer when one is given;
* every entity that aligns with the tokens is in ``doc.spans["nerre"]``; ``doc.ents`` holds a
  non-overlapping selection of them (``spacy.util.filter_spans``: longest first);
* relations are read through ``doc._.relations``, a list of ``(head Span, label, tail Span)`` triples, each
  with its score as ``.score`` (None without one: the triple unpacks as before);
* predictions' scores: ``doc.spans["nerre"].attrs["scores"]`` (one per span, None without one), each
  relation's ``.score``, and the document's in ``doc.user_data["nerre"]["score"]`` (``doc._.nerre_score``);
* everything that is not a token or a span (id, relations, what could not be exported) lives in
  ``doc.user_data["nerre"]`` as plain offsets, so it survives ``DocBin(store_user_data=True)``; span group
  attributes survive ``DocBin`` and ``Doc.to_disk`` too.

An entity that does not align with the tokens is never dropped silently: it is listed in the
:class:`ExportReport` that :func:`to_doc` and :func:`to_docs` return (and that
:meth:`ExportReport.from_docs` rebuilds from saved docs), together with the relations that lost an
argument that way.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import spacy
from spacy import displacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.util import filter_spans
from spacy.vocab import Vocab

from nerre.atomic import write_bytes, write_text
from nerre.example import Entity, Example, Relation, Token

SPANS_KEY = "nerre"
"""``doc.spans`` key that holds all entities (nested and overlapping ones included)."""
USER_DATA_KEY = "nerre"
"""``doc.user_data`` key of nerre's plain-data record (id, relations, export problems)."""

Alignment = Literal["strict", "contract", "expand"]
# head start, end, label; relation label; tail start, end, label (char offsets of the spans in the Doc)
_RelationRow = tuple[int, int, str, str, int, int, str]

__all__ = [
    "SPANS_KEY",
    "USER_DATA_KEY",
    "ExportReport",
    "RelationTriple",
    "annotate",
    "from_doc",
    "load_docbin",
    "render_html",
    "save_docbin",
    "span_scores",
    "to_doc",
    "to_docs",
]


# -- the report ---------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    """What an export kept and what it could not keep.

    Attributes:
        docs: number of docs.
        entities: number of entities in the examples.
        relations: number of relations in the examples.
        unaligned: ``(example id, entity)`` for each entity whose offsets do not align with the Doc's
            tokens; it is not in the Doc.
        adjusted: ``(example id, entity, entity as exported)`` for each entity that ``alignment="expand"``
            or ``"contract"`` moved to token boundaries.
        dropped_relations: ``(example id, relation)`` for each relation with an unaligned argument.
    """

    docs: int = 0
    entities: int = 0
    relations: int = 0
    unaligned: list[tuple[str | None, Entity]] = field(default_factory=list)
    adjusted: list[tuple[str | None, Entity, Entity]] = field(default_factory=list)
    dropped_relations: list[tuple[str | None, Relation]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every entity and relation was exported unchanged."""
        return not (self.unaligned or self.adjusted or self.dropped_relations)

    def __add__(self, other: ExportReport) -> ExportReport:
        return ExportReport(
            self.docs + other.docs,
            self.entities + other.entities,
            self.relations + other.relations,
            self.unaligned + other.unaligned,
            self.adjusted + other.adjusted,
            self.dropped_relations + other.dropped_relations,
        )

    def __str__(self) -> str:
        text = (
            f"{self.docs} docs, {self.entities} entities ({len(self.unaligned)} could not be aligned to tokens"
            f"{f', {len(self.adjusted)} moved to token boundaries' if self.adjusted else ''}), "
            f"{self.relations} relations ({len(self.dropped_relations)} dropped with an unaligned argument)"
        )
        return text

    @classmethod
    def from_docs(cls, docs: Iterable[Doc]) -> ExportReport:
        """Rebuild the report from docs made by :func:`to_doc` (also after a DocBin round trip)."""
        report = cls()
        for doc in docs:
            record = _record(doc)
            rid = record.get("id")
            report.docs += 1
            report.unaligned += [(rid, Entity(s, e, label)) for s, e, label in record.get("unaligned", ())]
            report.adjusted += [
                (rid, Entity(s, e, label), Entity(s2, e2, label)) for s, e, label, s2, e2 in record.get("adjusted", ())
            ]
            report.dropped_relations += [(rid, _relation(row)) for row in record.get("dropped_relations", ())]
            report.entities += len(doc.spans[SPANS_KEY]) if SPANS_KEY in doc.spans else 0
            report.relations += len(record.get("relations", ()))
        report.entities += len(report.unaligned)
        report.relations += len(report.dropped_relations)
        return report


# -- Doc extensions -----------------------------------------------------------------------------------
def _record(doc: Doc) -> dict[str, Any]:
    """nerre's plain-data record of ``doc`` (empty for docs nerre did not make)."""
    return doc.user_data.get(USER_DATA_KEY) or {}


def _relation(row: Sequence[Any]) -> Relation:
    hs, he, hl, label, ts, te, tl = row
    return Relation(Entity(hs, he, hl), Entity(ts, te, tl), label)


class RelationTriple(tuple):
    """``(head span, label, tail span)``, with the relation's ``score`` as an attribute (None without one)."""

    score: float | None

    def __new__(cls, head: Span, label: str, tail: Span, score: float | None = None) -> RelationTriple:
        triple = super().__new__(cls, (head, label, tail))
        triple.score = score
        return triple


def _relations_getter(doc: Doc) -> list[RelationTriple]:
    """``doc._.relations``: ``(head span, label, tail span)`` from the char offsets in ``doc.user_data``."""
    out = []
    record = _record(doc)
    scores = record.get("relation_scores") or ()
    for k, row in enumerate(record.get("relations", ())):
        relation = _relation(row)
        head, tail = (doc.char_span(e.start, e.end, label=e.label) for e in (relation.head, relation.tail))
        if head is None or tail is None:
            raise ValueError(
                f"relation {relation.label} has an argument that no longer aligns with the Doc's tokens "
                f"({relation}); was the Doc retokenized after export?"
            )
        out.append(RelationTriple(head, relation.label, tail, scores[k] if k < len(scores) else None))
    return out


def _register_extensions() -> None:
    """Register ``Doc._.relations`` and ``Doc._.nerre_id`` (idempotent: re-registering replaces ours)."""
    Doc.set_extension("relations", getter=_relations_getter, force=True)
    Doc.set_extension("nerre_id", getter=lambda doc: _record(doc).get("id"), force=True)
    Doc.set_extension("nerre_score", getter=lambda doc: _record(doc).get("score"), force=True)


_register_extensions()


# -- Example -> Doc -----------------------------------------------------------------------------------
_BLANK: Language | None = None


def _blank() -> Language:
    global _BLANK
    if _BLANK is None:
        _BLANK = spacy.blank("xx")
    return _BLANK


def _words_and_spaces(text: str, tokens: Sequence[Token]) -> tuple[list[str], list[bool]]:
    """Doc words and trailing-space flags that reproduce ``text`` exactly.

    Between tokens, one leading space becomes the previous token's trailing space and the rest of the gap
    (tabs, newlines, more spaces, or untokenized characters) becomes a token of its own, as in spaCy.
    """
    words: list[str] = []
    spaces: list[bool] = []

    def gap(chunk: str) -> None:
        if chunk.startswith(" ") and words:
            spaces[-1], chunk = True, chunk[1:]
        if chunk:
            words.append(chunk)
            spaces.append(False)

    pos = 0
    for token in tokens:
        if not pos <= token.start < token.end <= len(text):
            raise ValueError(
                f"token {token} is empty, out of order or outside the text (length {len(text)}); "
                "tokens must be non-empty, sorted and non-overlapping"
            )
        gap(text[pos : token.start])
        words.append(text[token.start : token.end])
        spaces.append(False)
        pos = token.end
    gap(text[pos:])
    return words, spaces


def to_doc(
    example: Example, nlp: Language | None = None, alignment: Alignment = "strict"
) -> tuple[Doc, ExportReport]:
    """Convert one example to a ``Doc`` (see the module docstring for where everything goes).

    Args:
        example: the example.
        nlp: when given, its tokenizer (``nlp.make_doc``) makes the tokens; otherwise ``example.tokens``.
        alignment: how entity offsets meet token boundaries (``Doc.char_span``): ``"strict"`` exports only
            entities on token boundaries; ``"expand"``/``"contract"`` move them outward/inward (listed in
            ``ExportReport.adjusted``).

    Returns:
        The Doc and its :class:`ExportReport` (entities that could not be aligned, relations dropped).

    Raises:
        ValueError: when ``example.tokens`` are out of order, overlapping or outside the text.
    """
    if nlp is not None:
        doc = nlp.make_doc(example.text)
    else:
        try:
            words, spaces = _words_and_spaces(example.text, example.tokens or [])
        except ValueError as e:
            raise ValueError(f"example {example.id!r}: {e}") from None
        doc = Doc(_blank().vocab, words=words, spaces=spaces)

    return doc, annotate(doc, example, alignment)


def annotate(doc: Doc, example: Example, alignment: Alignment = "strict", keep_ents: bool = False) -> ExportReport:
    """Put ``example``'s entities and relations on ``doc``, a Doc of the same text (see the module docstring).

    Args:
        doc: the Doc (``doc.text == example.text``).
        example: the annotations.
        alignment: how entity offsets meet token boundaries, as for :func:`to_doc`.
        keep_ents: keep the entities ``doc.ents`` already holds and add only the new ones that do not
            overlap them; by default ``doc.ents`` is replaced.

    Returns:
        The :class:`ExportReport`: entities that could not be aligned, relations dropped with them.
    """
    if doc.text != example.text:
        raise ValueError(f"example {example.id!r}: its text differs from the Doc's; annotate a Doc of the same text")
    report = ExportReport(docs=1, entities=len(example.entities), relations=len(example.relations))
    spans: dict[Entity, Span] = {}
    for entity in example.entities:
        span = doc.char_span(entity.start, entity.end, label=entity.label, alignment_mode=alignment)
        if span is None or len(span) == 0:
            report.unaligned.append((example.id, entity))
            continue
        spans[entity] = span
        if (span.start_char, span.end_char) != (entity.start, entity.end):
            report.adjusted.append((example.id, entity, _entity(span)))
    doc.spans[SPANS_KEY] = list(spans.values())
    if example.scores:
        doc.spans[SPANS_KEY].attrs["scores"] = [example.scores.get(e) for e in spans]
    if keep_ents:
        taken = {i for ent in doc.ents for i in range(ent.start, ent.end)}
        new = [s for s in filter_spans(doc.spans[SPANS_KEY]) if taken.isdisjoint(range(s.start, s.end))]
        doc.ents = sorted([*doc.ents, *new], key=lambda s: s.start)
    else:
        doc.ents = filter_spans(doc.spans[SPANS_KEY])

    rows: list[_RelationRow] = []
    relation_scores: list[float | None] = []
    for relation in example.relations:
        head, tail = spans.get(relation.head), spans.get(relation.tail)
        if head is None or tail is None:
            report.dropped_relations.append((example.id, relation))
        else:
            rows.append(_row(_entity(head), relation.label, _entity(tail)))
            relation_scores.append(example.scores.get(relation))
    scored = {"relation_scores": relation_scores} if any(v is not None for v in relation_scores) else {}
    if example.score is not None:
        scored["score"] = example.score
    doc.user_data[USER_DATA_KEY] = scored | {
        "id": example.id,
        "relations": rows,
        "unaligned": [(e.start, e.end, e.label) for _, e in report.unaligned],
        "adjusted": [(e.start, e.end, e.label, new.start, new.end) for _, e, new in report.adjusted],
        "dropped_relations": [_row(r.head, r.label, r.tail) for _, r in report.dropped_relations],
    }
    return report


def _entity(span: Span) -> Entity:
    return Entity(span.start_char, span.end_char, span.label_)


def _row(head: Entity, label: str, tail: Entity) -> _RelationRow:
    return (head.start, head.end, head.label, label, tail.start, tail.end, tail.label)


def to_docs(
    examples: Iterable[Example], nlp: Language | None = None, alignment: Alignment = "strict"
) -> tuple[list[Doc], ExportReport]:
    """:func:`to_doc` for many examples; the report covers all of them."""
    docs, report = [], ExportReport()
    for example in examples:
        doc, one = to_doc(example, nlp, alignment)
        docs.append(doc)
        report += one
    return docs, report


# -- Doc -> Example -----------------------------------------------------------------------------------
def from_doc(doc: Doc) -> Example:
    """The example a Doc holds: entities from ``doc.spans["nerre"]`` (``doc.ents`` when that key is absent),
    relations from ``doc._.relations``, non-whitespace tokens, and the id.

    Entities listed as unaligned in the export report are not in the Doc, so they are not in the result.
    """
    entity_spans = doc.spans[SPANS_KEY] if SPANS_KEY in doc.spans else doc.ents
    relations = [(Relation(_entity(head), _entity(tail), label), triple.score)
                 for triple in doc._.relations for head, label, tail in [triple]]
    return Example(
        doc.text,
        entities=[_entity(span) for span in entity_spans],
        relations=[r for r, _ in relations],
        tokens=[Token(t.idx, t.idx + len(t.text)) for t in doc if not t.text.isspace()],
        id=doc._.nerre_id,
        scores=span_scores(doc, SPANS_KEY) | {r: v for r, v in relations if v is not None},
        score=doc._.nerre_score,
    )


def span_scores(doc: Doc, key: str = SPANS_KEY) -> dict[Entity | Relation, float]:
    """The scores ``doc.spans[key].attrs["scores"]`` holds, by entity (empty where there are none)."""
    if key not in doc.spans:
        return {}
    group = doc.spans[key]
    scores = group.attrs.get("scores") or ()
    return {_entity(span): v for span, v in zip(group, scores) if v is not None}


# -- files --------------------------------------------------------------------------------------------
def save_docbin(docs: Iterable[Doc], path: str | Path) -> Path:
    """Write ``docs`` to a ``.spacy`` file (``DocBin(store_user_data=True)``) that spaCy's tools read.

    Returns:
        The path written (parent folders are created).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes(path, DocBin(store_user_data=True, docs=docs).to_bytes())  # whole or not at all


def load_docbin(path: str | Path, nlp_or_vocab: Language | Vocab | None = None) -> list[Doc]:
    """Read a ``.spacy`` file; ``doc._.relations`` and ``doc._.nerre_id`` work on the result.

    Args:
        path: the file.
        nlp_or_vocab: the vocab to read into (a pipeline's, or a ``Vocab``); a blank one when None.
    """
    if nlp_or_vocab is None:
        vocab = _blank().vocab
    elif isinstance(nlp_or_vocab, Language):
        vocab = nlp_or_vocab.vocab
    else:
        vocab = nlp_or_vocab
    return list(DocBin().from_disk(path).get_docs(vocab))


# -- HTML ---------------------------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; padding: 2rem">
<h1>{title}</h1>
{content}
</body>
</html>
"""


def _relation_arcs(doc: Doc, relations: list[tuple[Span, str, Span]]) -> dict[str, Any]:
    """displaCy manual "dep" data: the Doc's non-whitespace tokens (tagged with the labels of the entities
    starting there) and one arc per relation, from the head entity's first token to the tail's."""
    index = {t.i: k for k, t in enumerate(t for t in doc if not t.text.isspace())}
    tags: dict[int, list[str]] = {}
    for span in doc.spans[SPANS_KEY] if SPANS_KEY in doc.spans else doc.ents:
        tags.setdefault(span.start, []).append(span.label_)
    words = [{"text": t.text, "tag": "/".join(tags.get(t.i, []))} for t in doc if t.i in index]
    arcs = []
    for head, label, tail in relations:
        h, t = index.get(head.start), index.get(tail.start)
        if h is not None and t is not None and h != t:
            arcs.append({"start": min(h, t), "end": max(h, t), "label": label, "dir": "right" if h < t else "left"})
    return {"words": words, "arcs": arcs}


def render_html(docs: Iterable[Doc], path: str | Path | None = None, title: str = "nerre") -> str:
    """A standalone HTML page showing, for each Doc, its entities (displaCy "span" style, so nested entities
    show), its relations as labelled arcs between the entities' first tokens (displaCy manual "dep"), and a
    list of the relations as ``head [LABEL] --relation--> tail [LABEL]``.

    Args:
        docs: docs made by :func:`to_doc` (plain docs work too: their ``doc.ents`` are shown).
        path: when given, the page is written there (UTF-8).
        title: the page title.

    Returns:
        The HTML.
    """
    sections = []
    for k, doc in enumerate(docs):
        doc_id = doc._.nerre_id
        if SPANS_KEY in doc.spans:
            entities = displacy.render(doc, style="span", options={"spans_key": SPANS_KEY}, jupyter=False)
        else:
            entities = displacy.render(doc, style="ent", jupyter=False)
        relations = doc._.relations
        parts = [f"<h2>{html.escape(str(doc_id if doc_id is not None else k))}</h2>", entities]
        if relations:
            arcs = _relation_arcs(doc, relations)
            if arcs["arcs"]:
                options = {"compact": True, "distance": 110, "offset_x": 60}
                parts.append(displacy.render(arcs, style="dep", manual=True, options=options, jupyter=False))
            items = "".join(
                f"<li>{html.escape(h.text)} [{html.escape(h.label_)}] &rarr; <b>{html.escape(label)}</b> &rarr; "
                f"{html.escape(t.text)} [{html.escape(t.label_)}]</li>"
                for h, label, t in relations
            )
            parts.append(f'<ul class="nerre-relations">{items}</ul>')
        sections.append(f'<section class="nerre-doc">{"".join(parts)}</section>')
    page = _PAGE.format(title=html.escape(title), content="\n<hr>\n".join(sections))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text(path, page)
    return page
