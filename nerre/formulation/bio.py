"""BIO tags: the input's tokens, one per line, each followed by its IOB2 tag; then relation triples.

Target for ``John Doe joined Acme .`` with a Work_For relation::

    John B-person
    Doe I-person
    joined O
    Acme B-organization
    . O
    Relations:
    John Doe | work for | Acme

* The tokens are the example's own: a corpus's tokens, or nerre's word/punctuation tokens
  (:func:`nerre.example.tokenize`) for raw text. Tags are ``O``, ``B-type`` and ``I-type`` with the
  labels' display names (``B-Other Scientific Term``).
* Layout ``token SPACE tag``: tokens never hold whitespace (encoding refuses one that does), so the
  first space of a line ends the token and the rest of the line is the tag, whatever the token looks
  like (``O O``, ``B-PER O``). A space costs fewer model tokens than a tab (Gemma 3 merges it into
  the tag: ``▁B``, ``▁O``), and a line is a token of the source, then a tag from a small closed set:
  easy for a grammar to constrain.
* The relation section is the tagged formulation's (:mod:`nerre.formulation.relations`).
* IOB2 cannot hold spans that overlap, nor spans that do not start and end at token boundaries.
  :meth:`BioTags.representable` keeps the outermost spans, left to right (an entity overlapping one
  kept before it is left out), and leaves out relations that lose an argument; ``encode`` writes that
  part. What is left out is counted by kind (:data:`LOSSES`), never silently: ``nerre data roundtrip``
  reports it, and training logs it.
* Constrained decoding (:mod:`nerre.formulation.bio_grammar`) copies each token of the source
  in order and allows only the configured labels and valid IOB2 transitions, so a constrained
  answer never drifts; the parser below is for free generation.
* The parser is tolerant: when the listed tokens differ from the input's, it aligns their characters
  with the input's (so a token split differently still maps), keeps each entity whose characters are
  found at the aligned place (whitespace aside), and counts each defect:
  ``token_drift``, ``malformed_tag``, ``unknown_label``, ``invalid_transition`` (an ``I-X`` that
  continues nothing is read as ``B-X``, as conlleval does), ``hallucinated_entity`` and the relation
  section's defects.
"""

from __future__ import annotations

from collections import Counter
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from nerre.example import Entity, Example, entity_order
from nerre.formulation.base import Formulation, ParsedAnswer, Source
from nerre.formulation.relations import RELATIONS_HEADER, read_relation_section, relation_section
from nerre.loaders.tags import TagError, iob2_tags, parse_tag

if TYPE_CHECKING:
    from nerre.formulation.bio_grammar import BioGrammar
    from nerre.vocabulary import TokenTable

#: What :meth:`BioTags.representable` leaves out of an example, with what it means.
LOSSES = {
    "overlapping_entity": "an entity that overlaps one kept before it (nested inside it, crossing it, or the "
    "same span with another label); IOB2 tags hold one entity per token",
    "unaligned_entity": "an entity that does not start and end at token boundaries",
    "orphaned_relation": "a relation whose head or tail was left out",
}

_HEADER = RELATIONS_HEADER.strip()


class BioTags(Formulation):
    """One ``token TAG`` line per input token (IOB2 tags), followed by relation triples."""

    name = "bio"
    answer_scale = 4  # a line per token: the token, a space, a tag (1-3 model tokens) and a newline

    # -- what the tags can hold ---------------------------------------------------------
    def representable(self, example: Example) -> tuple[Example, Counter]:
        tokens = example.tokens or []
        starts, ends = {t.start for t in tokens}, {t.end for t in tokens}
        kept: list[Entity] = []
        lost: Counter = Counter()
        for e in sorted(set(example.entities), key=entity_order):
            if e.start not in starts or e.end not in ends:
                lost["unaligned_entity"] += 1
            elif kept and e.start < kept[-1].end:
                lost["overlapping_entity"] += 1
            else:
                kept.append(e)
        known = set(kept)
        relations = [r for r in example.relations if r.head in known and r.tail in known]
        if len(relations) < len(example.relations):
            lost["orphaned_relation"] += len(example.relations) - len(relations)
        return Example(example.text, kept, relations, example.tokens, example.id), lost

    # -- encoding ---------------------------------------------------------------------
    def encode(self, example: Example) -> str:
        kept, _ = self.representable(example)
        lines = [f"{word} {tag}" for word, tag in zip(self.words(example), self.tags(kept))]
        return "\n".join(lines) + relation_section(self.schema, kept)

    def tags(self, example: Example) -> list[str]:
        """The IOB2 tag of each token of ``example`` (display names), from its representable entities."""
        tokens = example.tokens or []
        first = {t.start: i for i, t in enumerate(tokens)}
        after = {t.end: i + 1 for i, t in enumerate(tokens)}
        kept, _ = self.representable(example)
        spans = [(first[e.start], after[e.end], self.schema.entity(e.label).display) for e in kept.entities]
        return iob2_tags(len(tokens), spans)

    def words(self, example: Example) -> list[str]:
        """The token strings of ``example`` as the answer lists them (a token holding whitespace is an error)."""
        words = example.words
        for i, word in enumerate(words):
            if not word or any(c.isspace() for c in word):
                raise ValueError(
                    f"example {example.id}: token {i} ({word!r}) is empty or holds whitespace, which the bio "
                    "layout 'token TAG' cannot write; fix the tokenization or use the tagged formulation"
                )
        return words

    def instruction(self) -> str:
        text = (
            "List the tokens of the input text in order, one per line, each copied exactly and followed by a "
            "space and its tag: B-type for the first token of an entity mention, I-type for each further token "
            "of the same mention, O for every other token. Use only the entity types listed; mentions do not "
            "overlap."
        )
        if self.schema.relations:
            text += (
                " After the last token write a line 'Relations:' and then one line per relation: "
                "head | relation type | tail, where head and tail are tagged mentions, written as in the "
                "text (add #2, #3, ... when the same mention is tagged more than once). "
                "Use only the relation types listed."
            )
        return text

    # -- the grammar of constrained decoding ------------------------------------------------
    def grammar(self, source: Source, vocabulary: TokenTable | None = None, max_relations: int = 64,
                signatures: bool = True, **limits: Any) -> BioGrammar:
        """The valid answers to ``source``: its tokens in order with valid IOB2 tags, then triples
        (see :mod:`nerre.formulation.bio_grammar`).

        Args:
            source: the text (tokenized by :func:`nerre.example.tokenize`), or an example with its tokens.
            vocabulary: the byte strings of the token ids, for the token level.
            max_relations: most relation lines.
            signatures: relation arguments must fit their type's signature (schema ``head``/``tail``).
            limits: other grammars' limits (``max_nesting``), ignored: IOB2 tags do not nest.
        """
        from nerre.formulation.bio_grammar import BioGrammar

        example = source if isinstance(source, Example) else Example(source)
        return BioGrammar(example, self, vocabulary, max_relations, signatures)

    # -- parsing ----------------------------------------------------------------------
    def parse_answer(self, source: Source, answer: str) -> ParsedAnswer:
        example = Example(source) if isinstance(source, str) else source
        result = ParsedAnswer()
        lines = answer.split("\n")
        header = next((i for i, line in enumerate(lines) if line.strip() == _HEADER), None)
        if not self.schema.relations or header is None:
            token_lines, relation_lines = lines, None
        else:
            token_lines, relation_lines = lines[:header], lines[header + 1 :]
        words, spans = self._read_lines(token_lines, result.defects)
        result.entities = self._map_to_source(words, spans, example, result.defects)
        result.relations = read_relation_section(
            self.schema, relation_lines, result.entities, example.text, result.defects
        )
        return result

    def _label(self, name: str) -> str | None:
        if name in self._entity_by_display:
            return self._entity_by_display[name]
        return name if name in self.schema.entity_names else None

    def _read_lines(self, lines: list[str], defects: Counter) -> tuple[list[str], list[tuple[int, int, str]]]:
        """The listed tokens, and the entities the tags make of them (in token positions, end exclusive)."""
        words: list[str] = []
        spans: list[tuple[int, int, str]] = []
        current: tuple[int, str] | None = None  # the open entity: first token and label
        for line in lines:
            parts = line.split(None, 1)
            if not parts:
                continue  # a blank line holds neither a token nor a tag
            position = len(words)
            words.append(parts[0])
            prefix, label = self._tag(parts[1].strip() if len(parts) > 1 else "", defects)
            if current is not None and not (prefix == "I" and label == current[1]):
                spans.append((current[0], position, current[1]))
                current = None
            if prefix == "I" and current is None:
                defects["invalid_transition"] += 1
            if label is not None and current is None:
                current = (position, label)
        if current is not None:
            spans.append((current[0], len(words), current[1]))
        return words, spans

    def _tag(self, tag: str, defects: Counter) -> tuple[str, str | None]:
        """``(prefix, label)`` of a tag: ``("O", None)`` for O, and for a tag that is malformed or names
        an unknown type (counted)."""
        try:
            prefix, name = parse_tag(tag)
        except TagError:
            prefix, name = "", None
        if prefix == "O":
            return "O", None
        if prefix not in ("B", "I") or name is None:
            defects["malformed_tag"] += 1
            return "O", None
        label = self._label(name.strip())
        if label is None:
            defects["unknown_label"] += 1
            return "O", None
        return prefix, label

    def _map_to_source(
        self, words: list[str], spans: list[tuple[int, int, str]], example: Example, defects: Counter
    ) -> list[Entity]:
        """Entities over the source for spans of the listed tokens, matched by their characters."""
        tokens = example.tokens or []
        if words == example.words:
            return sorted({Entity(tokens[s].start, tokens[e - 1].end, label) for s, e, label in spans},
                          key=entity_order)
        defects["token_drift"] += 1
        text = example.text
        source, at = [], []  # the source with each run of whitespace as one space, and where each character is
        for i, c in enumerate(text):
            if not c.isspace():
                source.append(c)
                at.append(i)
            elif source and source[-1] != " ":
                source.append(" ")
                at.append(i)
        source_text, listed = "".join(source), " ".join(words)
        starts = [0]
        for word in words:
            starts.append(starts[-1] + len(word) + 1)
        position: dict[int, int] = {}
        for a, b, size in SequenceMatcher(None, listed, source_text, autojunk=False).get_matching_blocks():
            for k in range(size):
                position[a + k] = b + k
        entities: set[Entity] = set()
        for s, e, label in spans:
            begin, end = starts[s], starts[e] - 1  # the listed characters of tokens s..e-1
            first, last = position.get(begin), position.get(end - 1)
            if first is None or last is None or _squeeze(source_text[first : last + 1]) != _squeeze(listed[begin:end]):
                defects["hallucinated_entity"] += 1
                continue
            entities.add(Entity(at[first], at[last] + 1, label))
        return sorted(entities, key=entity_order)


def _squeeze(text: str) -> str:
    return "".join(text.split())
