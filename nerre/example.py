"""The data model: one annotated example, its entities (character spans) and relations.

Every other part of nerre (loaders, formulations, metrics, prediction, spaCy export)
reads and writes :class:`Example`. Offsets are character offsets into ``Example.text``,
``end`` exclusive. Nested and overlapping entities are allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_CLUSTER = regex.compile(r"\X")
NO_SPACE_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
"""Scripts written without spaces between words: each of their characters is a token of its own."""
_NO_SPACE = regex.compile("[" + "".join(f"\\p{{{name}}}" for name in NO_SPACE_SCRIPTS) + "\u30fc\uff70]")


@dataclass(frozen=True, order=True)
class Token:
    """A token of the text: ``text[start:end]``."""

    start: int
    end: int


@dataclass(frozen=True, order=True)
class Entity:
    """An entity mention: the characters ``text[start:end]`` carry ``label``."""

    start: int
    end: int
    label: str


@dataclass(frozen=True, order=True)
class Relation:
    """A directed relation ``head --label--> tail`` between two entities of the same example."""

    head: Entity
    tail: Entity
    label: str


def entity_order(entity: Entity) -> tuple[int, int, str]:
    """Canonical order: by start, outer (longer) spans before the spans nested inside them."""
    return (entity.start, -entity.end, entity.label)


def written_without_spaces(character: str) -> bool:
    """Whether ``character`` belongs to a script written without spaces (:data:`NO_SPACE_SCRIPTS`)."""
    return _NO_SPACE.match(character) is not None


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into word and punctuation tokens with character offsets.

    A token never splits a character as a reader sees it (a grapheme cluster: a letter with its
    combining accents, an emoji sequence): a word is a run of clusters that start with a word
    character, any other cluster that is not white space is a token of its own. Scripts written
    without spaces (:data:`NO_SPACE_SCRIPTS`: Chinese, Japanese kana, Thai, Lao, Khmer, Myanmar) have
    one token per character, as BERT's basic tokenizer does for Chinese, so a tag may stand between
    any two of their characters.
    """
    if text.isascii():  # one code point per cluster (bar CR LF, which is white space)
        return [Token(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    tokens: list[Token] = []
    word_end = -1
    for m in _CLUSTER.finditer(text):
        first = m.group()[0]
        if first.isspace():
            continue
        if _NO_SPACE.match(first):
            tokens.append(Token(m.start(), m.end()))
            word_end = -1
        elif first.isalnum() or first == "_":
            if word_end == m.start():  # the word goes on
                tokens[-1] = Token(tokens[-1].start, m.end())
            else:
                tokens.append(Token(m.start(), m.end()))
            word_end = m.end()
        else:
            tokens.append(Token(m.start(), m.end()))
    return tokens


def split_tokens(tokens: list[Token], cuts: Iterable[int]) -> list[Token]:
    """``tokens`` split at the character offsets ``cuts`` that fall inside one of them."""
    inside = sorted(set(cuts))
    if not inside:
        return tokens
    out: list[Token] = []
    k = 0
    for token in tokens:
        start = token.start
        while k < len(inside) and inside[k] <= start:
            k += 1
        while k < len(inside) and inside[k] < token.end:
            out.append(Token(start, inside[k]))
            start = inside[k]
            k += 1
        out.append(Token(start, token.end))
    return out


def inside_words(tokens: Sequence[Token], entities: Iterable[Entity]) -> set[int]:
    """The entity boundaries that fall strictly inside a token."""
    bounds = {t.start for t in tokens} | {t.end for t in tokens}
    out = set()
    for e in entities:
        for at in (e.start, e.end):
            if at not in bounds:
                out.add(at)
    if not out:
        return out
    return {at for at in out if any(t.start < at < t.end for t in tokens)}


def grapheme_bounds(text: str) -> set[int]:
    """The character offsets between grapheme clusters of ``text`` (0 and ``len(text)`` included)."""
    if text.isascii():
        return set(range(len(text) + 1)) - {m.start() + 1 for m in re.finditer("\r\n", text)}
    return {0} | {m.end() for m in _CLUSTER.finditer(text)}


@dataclass
class Example:
    """An annotated text.

    Args:
        text: the source text.
        entities: entity mentions as character spans of ``text``.
        relations: relations between entries of ``entities`` (a list: corpora do repeat triples).
        tokens: the tokens of ``text`` with character offsets; when not given, those of
            :func:`tokenize`, split where an entity starts or ends inside a word (``Linux Foundatio|n``),
            so that every entity starts and ends on token boundaries.
        id: an identifier used in error messages and prediction files.
        scores: predictions only: the probability of each predicted entity and relation, from the decoder's
            own decisions (see :mod:`nerre.decoding.confidence`), keyed by the entity or relation itself. A
            side mapping, so that entities and relations stay plain values: equality, hashing and metrics
            ignore scores, and an entry without a score is simply absent.
        score: predictions only: the document's score, the probability of its least confident decision
            (what ``nerre predict --rank uncertainty`` sorts by).

    ``scores`` and ``score`` take no part in comparing examples.
    """

    text: str
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    tokens: list[Token] | None = None
    id: str | None = None
    scores: dict[Entity | Relation, float] = field(default_factory=dict, compare=False, repr=False)
    score: float | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.tokens is None:
            self.tokens = tokenize(self.text)
            if self.entities:
                self.tokens = split_tokens(self.tokens, inside_words(self.tokens, self.entities))
        self.entities = sorted(self.entities, key=entity_order)
        self.relations = sorted(self.relations, key=relation_order)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_tokens(
        cls,
        words: Sequence[str],
        spans: Iterable[tuple[int, int, str]] = (),
        relations: Iterable[tuple[int, int, str]] = (),
        id: str | None = None,
        joiner: str = " ",
    ) -> Example:
        """Build an example from words joined by single spaces (or by ``joiner``).

        Args:
            words: the tokens.
            spans: entities as ``(first token, end token exclusive, label)``.
            relations: ``(head index, tail index, label)``, indices into ``spans``.
            id: identifier of the example.
            joiner: what stands between two words: ``""`` for the characters of Chinese text.
        """
        tokens, offset = [], 0
        for word in words:
            tokens.append(Token(offset, offset + len(word)))
            offset += len(word) + len(joiner)
        text = joiner.join(words)
        spans = list(spans)
        entities = [Entity(tokens[s].start, tokens[e - 1].end, label) for s, e, label in spans]
        rels = [Relation(entities[h], entities[t], label) for h, t, label in relations]
        return cls(text, entities, rels, tokens, id)

    # -- views ------------------------------------------------------------------------
    @property
    def words(self) -> list[str]:
        """The token strings."""
        return [self.text[t.start : t.end] for t in self.tokens or []]

    def span_text(self, entity: Entity) -> str:
        """The characters an entity covers."""
        return self.text[entity.start : entity.end]

    def same_annotations(self, other: Example) -> bool:
        """True when both examples carry the same entities and relations (order ignored)."""
        return sorted(self.entities, key=entity_order) == sorted(other.entities, key=entity_order) and sorted(
            self.relations, key=relation_order
        ) == sorted(other.relations, key=relation_order)

    def validate(self) -> None:
        """Raise ``ValueError`` when a span is out of range or a relation names an unknown entity."""
        known = set(self.entities)
        for e in self.entities:
            if not 0 <= e.start < e.end <= len(self.text):
                raise ValueError(f"entity {e} is outside the text (length {len(self.text)})")
        for r in self.relations:
            if r.head not in known or r.tail not in known:
                raise ValueError(f"relation {r.label} names an entity that is not in the entity list")

    # -- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The prediction-JSONL record: entities with ``text``, relations by entity index; with scores, a
        ``score`` on each entity and relation that has one, and the document's ``score``."""
        index = {e: i for i, e in enumerate(self.entities)}
        scores = self.scores
        entities = [{"start": e.start, "end": e.end, "label": e.label, "text": self.span_text(e)} for e in self.entities]
        relations = [{"head": index[r.head], "tail": index[r.tail], "label": r.label} for r in self.relations]
        if scores:
            for item, key in zip(entities + relations, self.entities + self.relations):
                if key in scores:
                    item["score"] = round(scores[key], 6)
        record: dict[str, Any] = {"id": self.id, "text": self.text, "entities": entities, "relations": relations}
        if self.score is not None:
            record["score"] = round(self.score, 6)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Example:
        """Inverse of :meth:`to_dict` (``text`` of each entity, when present, is checked by loaders).

        An optional ``tokens`` list of ``[start, end]`` pairs gives the tokens (as ``to_dataset`` writes them);
        ``score`` fields, as :meth:`to_dict` writes them, give :attr:`scores` and :attr:`score`.
        """
        raw_entities, raw_relations = record.get("entities", []), record.get("relations", [])
        entities = [Entity(int(e["start"]), int(e["end"]), str(e["label"])) for e in raw_entities]
        relations = [Relation(entities[int(r["head"])], entities[int(r["tail"])], str(r["label"])) for r in raw_relations]
        rid = record.get("id")
        tokens = record.get("tokens")
        tokens = None if tokens is None else [Token(int(start), int(end)) for start, end in tokens]
        scores = {key: float(raw["score"]) for key, raw in zip(entities + relations, raw_entities + raw_relations)
                  if raw.get("score") is not None}
        score = record.get("score")
        return cls(record["text"], entities, relations, tokens, None if rid is None else str(rid), scores,
                   None if score is None else float(score))


def relation_order(relation: Relation) -> tuple:
    """Canonical order of relations: by head, then tail, then label."""
    return (entity_order(relation.head), entity_order(relation.tail), relation.label)
