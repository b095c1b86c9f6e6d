"""Inline tags: the input reproduced with ``<type>...</type>`` around entities, then relation triples.

Target for ``John Doe joined Acme .`` with a Work_For relation::

    <person>John Doe</person> joined <organization>Acme</organization> .
    Relations:
    John Doe | work for | Acme

* Tags use the labels' display names; nothing else is markup, so no special tokens are needed.
* Nested entities are nested tags, outer tag first: ``<AE><Drug>insulin</Drug> allergy</AE>``.
  Spans that cross are representable when their labels differ (a closing tag closes the latest
  open tag of its own label); two crossing spans of the same label are not, and ``encode`` raises.
* A triple names an entity by its text; when several tagged entities share that text, ``#k``
  (1-based, in text order) says which one: ``Paris #2`` (the relation section is
  :mod:`nerre.formulation.relations`, shared with the bio formulation).
* Text is text: only the configured tag strings ``<display>`` and ``</display>`` are markup, and
  not even they where the source itself holds them: the parser reads the answer against the
  source, so characters of the source (``<person>`` in an HTML input, a ``Relations:`` line) are
  always text. A verbatim copy of any input reads as no entities.
* The parser is tolerant: where the answer drifts from the source it aligns the two, keeps every
  entity whose text is found at the aligned place, and counts each defect instead of raising.
* :meth:`TaggedText.grammar` gives the answers constrained decoding may produce
  (:class:`~nerre.formulation.tagged_grammar.TagGrammar`); the parser reads each of them exactly.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

from nerre.example import Entity, Example, Relation, entity_order, grapheme_bounds, tokenize
from nerre.formulation.base import Formulation, ParsedAnswer, Source, source_text
from nerre.formulation.relations import RELATIONS_HEADER, parse_relations, read_relation_section, relation_section
from nerre.schema import Schema

if TYPE_CHECKING:
    from nerre.formulation.tagged_grammar import TagGrammar
    from nerre.vocabulary import TokenTable

_TAG = re.compile(r"<(/?)([^<>\n]{1,64})>")
_LABEL_LIKE = re.compile(r"[A-Za-z][\w\- .]{0,40}")


class TaggedText(Formulation):
    """Inline entity tags in a copy of the input, followed by relation triples."""

    name = "tagged"

    def __init__(self, schema: Schema):
        super().__init__(schema)
        #: the configured tag strings: (label name, closing)
        self.tags = {f"<{label.display}>": (label.name, False) for label in schema.entities}
        self.tags.update({f"</{label.display}>": (label.name, True) for label in schema.entities})
        configured = "|".join(re.escape(tag) for tag in sorted(self.tags, key=len, reverse=True))
        self._markup = re.compile(f"{configured}|{_TAG.pattern}" if configured else _TAG.pattern)

    # -- encoding ---------------------------------------------------------------------
    def encode(self, example: Example) -> str:
        return self.tag(example) + relation_section(self.schema, example)

    def tag(self, example: Example) -> str:
        """The input text with inline tags around every entity."""
        text, entities = example.text, sorted(set(example.entities), key=entity_order)
        display = {e: self.schema.entity(e.label).display for e in entities}
        _check_same_label_crossing(entities, example)
        events: dict[int, tuple[list[Entity], list[Entity]]] = {}
        for e in entities:
            events.setdefault(e.end, ([], []))[0].append(e)
            events.setdefault(e.start, ([], []))[1].append(e)
        out, pos = [], 0
        for at in sorted(events):
            closing, opening = events[at]
            out.append(text[pos:at])
            # inner spans close first; identical spans close in reverse of their opening order
            for e in sorted(closing, key=lambda e: (e.start, e.label), reverse=True):
                out.append(f"</{display[e]}>")
            for e in sorted(opening, key=lambda e: (-e.end, e.label)):
                out.append(f"<{display[e]}>")
            pos = at
        out.append(text[pos:])
        return "".join(out)

    def instruction(self) -> str:
        text = (
            "Copy the input text exactly, character for character, and wrap every entity mention in tags "
            "named after its type, for example <type>mention</type>. Use only the entity types listed; "
            "an entity inside another one gets its own tags inside the outer ones."
        )
        if self.schema.relations:
            text += (
                " After the text write a line 'Relations:' and then one line per relation: "
                "head | relation type | tail, where head and tail are tagged mentions, written as in the "
                "text (add #2, #3, ... when the same mention is tagged more than once). "
                "Use only the relation types listed."
            )
        return text

    # -- the grammar of constrained decoding ------------------------------------------------
    def grammar(self, source: Source, vocabulary: TokenTable | None = None, max_nesting: int = 4,
                max_relations: int = 64, signatures: bool = True) -> TagGrammar:
        """The faithful answers to ``source`` (see :mod:`nerre.formulation.tagged_grammar`).

        Args:
            source: the text, or an example whose tokens tell where tags may go.
            vocabulary: the byte strings of the token ids, for the token level.
            max_nesting: most tags open at once.
            max_relations: most relation lines.
            signatures: relation arguments must fit their type's signature (schema ``head``/``tail``).
        """
        from nerre.formulation.tagged_grammar import TagGrammar

        if isinstance(source, Example):
            text, tokens = source.text, source.tokens or tokenize(source.text)
        else:
            text, tokens = source, tokenize(source)
        return TagGrammar(text, tokens, self, vocabulary, max_nesting, max_relations, signatures)

    # -- parsing ----------------------------------------------------------------------------
    def parse_answer(self, source: Source, answer: str) -> ParsedAnswer:
        text, result = source_text(source), ParsedAnswer()
        tagged, relation_lines = self._split(text, answer)
        pieces = self._read_copy(tagged, text)
        if pieces is None:  # the answer drifts from the source
            result.defects["text_drift"] += 1
            pieces = self._read_aligned(tagged, text)
        plain, spans = self._spans(pieces, result.defects)
        result.entities = self._map_to_source(plain, spans, text, result.defects)
        result.relations = read_relation_section(self.schema, relation_lines, result.entities, text, result.defects)
        return result

    def _split(self, text: str, output: str) -> tuple[str, list[str] | None]:
        """Separate the tagged text from the relation lines (skipping headers the input itself holds)."""
        if not self.schema.relations:
            return output, None
        at = -1
        for _ in range(text.count(RELATIONS_HEADER) + 1):
            at = output.find(RELATIONS_HEADER, at + 1)
            if at < 0:
                return output, None
        return output[:at], output[at + len(RELATIONS_HEADER) :].split("\n")

    def answer_spans(self, source: Source, answer: str, entities: list[Entity]
                     ) -> tuple[dict[Entity, tuple[int, int]], list[tuple[Relation, tuple[int, int]]]] | None:
        """Where in ``answer`` each entity and relation was written, for scoring the decisions that wrote it.

        Entities: the answer characters from the start of the opening tag to the end of the closing tag.
        Relations: those of each relation line, from the line break that starts it to its end. ``entities``
        are those :meth:`parse_answer` read (the relation lines name them). None when the answer is not a
        faithful copy of the source (free generation that drifted).
        """
        text = source_text(source)
        tagged, relation_lines = self._split(text, answer)
        widths: list[int] = []
        pieces = self._read_copy(tagged, text, widths)
        if pieces is None:
            return None
        ranges: dict[Entity, tuple[int, int]] = {}
        open_tags: list[tuple[str, int, int]] = []  # label, start in the text, start in the answer
        at = length = 0
        for piece, width in zip(pieces, widths):
            if isinstance(piece, str):
                length += len(piece)
            elif piece is not None:
                label, closing = piece
                if not closing:
                    open_tags.append((label, length, at))
                else:
                    index = next((i for i in range(len(open_tags) - 1, -1, -1) if open_tags[i][0] == label), None)
                    if index is not None:
                        _, start, begin = open_tags.pop(index)
                        end = length
                        while start < end and text[start].isspace():
                            start += 1
                        while end > start and text[end - 1].isspace():
                            end -= 1
                        ranges[Entity(start, end, label)] = (begin, at + width)
            at += width
        relations: list[tuple[Relation, tuple[int, int]]] = []
        if relation_lines is not None:
            at = len(tagged) + len(RELATIONS_HEADER)
            for k, line in enumerate(relation_lines):
                begin = at - 1 if k else at  # the line break before a line is its first decision
                for relation in parse_relations(self.schema, [line], entities, text, Counter()):
                    relations.append((relation, (begin, at + len(line))))
                at += len(line) + 1
        return ranges, relations

    def _read_copy(self, tagged: str, text: str, widths: list[int] | None = None) -> list | None:
        """The answer as pieces, read as a copy of ``text`` with markup inserted; None when it drifts.

        Pieces: text (a ``str``), a configured tag ``(label name, closing)``, or None for a string
        that looks like a tag of an unknown label. A tag-like string the source holds at this
        point is a copy of the source, never markup. ``widths``, when given, receives the number of
        answer characters of each piece.
        """
        widths = [] if widths is None else widths
        pieces: list = []
        p = i = 0
        end, n = len(tagged), len(text)
        while p < end:
            q = tagged.find("<", p)
            if q < 0:
                q = end
            if q > p:
                if not text.startswith(tagged[p:q], i):
                    return None
                pieces.append(tagged[p:q])
                widths.append(q - p)
                i += q - p
                p = q
                continue
            m = self._markup.match(tagged, p)
            if m is not None:
                found = m.group(0)
                if text.startswith(found, i):
                    pieces.append(found)
                    widths.append(len(found))
                    i += len(found)
                    p = m.end()
                    continue
                if found in self.tags or _LABEL_LIKE.fullmatch(m.group(2)):
                    pieces.append(self.tags.get(found))
                    widths.append(m.end() - p)
                    p = m.end()
                    continue
            if i < n and text[i] == "<":
                pieces.append("<")
                widths.append(1)
                i += 1
                p += 1
                continue
            return None
        return pieces if i == n else None

    def _units(self, text: str) -> list[str]:
        """``text`` as single characters, except that tag-like strings are one unit each."""
        units: list[str] = []
        pos = 0
        for m in self._markup.finditer(text):
            units.extend(text[pos : m.start()])
            units.append(m.group(0))
            pos = m.end()
        units.extend(text[pos:])
        return units

    def _read_aligned(self, tagged: str, text: str) -> list:
        """Pieces (as :meth:`_read_copy`) of an answer that drifts: aligned to the source, tag-like
        strings matched to the same string of the source are text; the others are markup."""
        units = self._units(tagged)
        copied = [False] * len(units)
        matcher = SequenceMatcher(None, units, self._units(text), autojunk=False)
        for a, _, size in matcher.get_matching_blocks():
            if any(len(u) == 1 for u in units[a : a + size]):  # a lone tag matched somewhere is markup
                copied[a : a + size] = [True] * size
        pieces: list = []
        for unit, copy in zip(units, copied):
            if copy or len(unit) == 1:
                pieces.append(unit)
            elif unit in self.tags:
                pieces.append(self.tags[unit])
            else:
                m = _TAG.fullmatch(unit)
                pieces.append(None if m and _LABEL_LIKE.fullmatch(m.group(2)) else unit)
        return pieces

    def _spans(self, pieces: list, defects: Counter) -> tuple[str, list[tuple[int, int, str]]]:
        """The text of the pieces and the tagged spans in its coordinates."""
        plain: list[str] = []
        length = 0
        open_tags: list[tuple[str, int]] = []
        spans: list[tuple[int, int, str]] = []
        for piece in pieces:
            if isinstance(piece, str):
                plain.append(piece)
                length += len(piece)
                continue
            if piece is None:
                defects["unknown_label"] += 1
                continue
            label, closing = piece
            if not closing:
                open_tags.append((label, length))
                continue
            index = next((i for i in range(len(open_tags) - 1, -1, -1) if open_tags[i][0] == label), None)
            if index is None:
                defects["unopened_tag"] += 1
                continue
            if index != len(open_tags) - 1:
                defects["crossing_tags"] += 1
            _, start = open_tags.pop(index)
            spans.append((start, length, label))
        if open_tags:
            defects["unclosed_tag"] += len(open_tags)
        return "".join(plain), spans

    def _map_to_source(
        self, plain: str, spans: list[tuple[int, int, str]], text: str, defects: Counter
    ) -> list[Entity]:
        """Map spans of the de-tagged answer onto the source, keeping those whose text is found there."""
        if plain == text:
            position = None
        else:
            position = {}
            matcher = SequenceMatcher(None, plain, text, autojunk=False)
            for a, b, size in matcher.get_matching_blocks():
                for k in range(size):
                    position[a + k] = b + k
        bounds = None if text.isascii() else sorted(grapheme_bounds(text))
        entities: set[Entity] = set()
        for start, end, label in spans:
            while start < end and plain[start].isspace():
                start += 1
            while end > start and plain[end - 1].isspace():
                end -= 1
            if start == end:
                defects["empty_entity"] += 1
                continue
            if position is not None:
                s, last = position.get(start), position.get(end - 1)
                if s is None or last is None or text[s : last + 1] != plain[start:end]:
                    defects["hallucinated_entity"] += 1
                    continue
                start, end = s, last + 1
            if bounds is not None:  # widen a span that splits a character to whole characters
                s, e = bounds[bisect_right(bounds, start) - 1], bounds[bisect_left(bounds, end)]
                if (s, e) != (start, end):
                    defects["split_character"] += 1
                    start, end = s, e
            entities.add(Entity(start, end, label))
        return sorted(entities, key=entity_order)


def _check_same_label_crossing(entities: list[Entity], example: Example) -> None:
    for i, a in enumerate(entities):
        for b in entities[i + 1 :]:
            if b.start >= a.end:
                break
            if a.label == b.label and a.start < b.start < a.end < b.end:
                raise ValueError(
                    f"example {example.id}: entities {a} and {b} cross and share a label, which inline tags "
                    "cannot represent; drop one of them or use the json formulation"
                )
