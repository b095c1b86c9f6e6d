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
* ``decode`` is tolerant: it aligns the text around the tags to the source, keeps every entity
  whose text is found at the aligned place, and counts each defect instead of raising.
"""

from __future__ import annotations

import re
from collections import Counter
from difflib import SequenceMatcher

from nerre.example import Entity, Example, entity_order
from nerre.formulation.base import Decoded, Formulation, Source, source_text
from nerre.formulation.relations import RELATIONS_HEADER, parse_relations, relation_section

_TAG = re.compile(r"<(/?)([^<>\n]{1,64})>")
_LABEL_LIKE = re.compile(r"[A-Za-z][\w\- .]{0,40}")


class TaggedText(Formulation):
    """Inline entity tags in a copy of the input, followed by relation triples."""

    name = "tagged"

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

    # -- decoding ---------------------------------------------------------------------
    def decode(self, source: Source, output: str) -> Decoded:
        text, result = source_text(source), Decoded()
        tagged, relation_lines = self._split(text, output)
        plain, spans = self._parse_tags(tagged, text, result.defects)
        result.entities = self._map_to_source(plain, spans, text, result.defects)
        if self.schema.relations:
            if relation_lines is None:
                result.defects["missing_relations"] += 1
            else:
                result.relations = parse_relations(self.schema, relation_lines, result.entities, text, result.defects)
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

    def _label(self, name: str) -> str | None:
        if name in self._entity_by_display:
            return self._entity_by_display[name]
        return name if name in self.schema.entity_names else None

    def _parse_tags(self, tagged: str, text: str, defects: Counter) -> tuple[str, list[tuple[int, int, str]]]:
        """Strip the tags: the remaining text and the tagged spans in its coordinates."""
        plain: list[str] = []
        length, pos = 0, 0
        open_tags: list[tuple[str, int]] = []
        spans: list[tuple[int, int, str]] = []
        for m in _TAG.finditer(tagged):
            literal = tagged[pos : m.start()]
            plain.append(literal)
            length += len(literal)
            pos = m.end()
            closing, label = m.group(1) == "/", self._label(m.group(2))
            if label is None:
                if m.group(0) in text or not _LABEL_LIKE.fullmatch(m.group(2)):
                    plain.append(m.group(0))  # literal text that looks like a tag
                    length += len(m.group(0))
                else:
                    defects["unknown_label"] += 1
                continue
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
        plain.append(tagged[pos:])
        if open_tags:
            defects["unclosed_tag"] += len(open_tags)
        return "".join(plain), spans

    def _map_to_source(
        self, plain: str, spans: list[tuple[int, int, str]], text: str, defects: Counter
    ) -> list[Entity]:
        """Map spans of the de-tagged output onto the source, keeping those whose text is found there."""
        if plain == text:
            position = None
        else:
            defects["text_drift"] += 1
            position = {}
            matcher = SequenceMatcher(None, plain, text, autojunk=False)
            for a, b, size in matcher.get_matching_blocks():
                for k in range(size):
                    position[a + k] = b + k
        entities: set[Entity] = set()
        for start, end, label in spans:
            while start < end and plain[start].isspace():
                start += 1
            while end > start and plain[end - 1].isspace():
                end -= 1
            if start == end:
                defects["empty_entity"] += 1
                continue
            if position is None:
                entities.add(Entity(start, end, label))
                continue
            s, last = position.get(start), position.get(end - 1)
            if s is None or last is None or text[s : last + 1] != plain[start:end]:
                defects["hallucinated_entity"] += 1
                continue
            entities.add(Entity(s, last + 1, label))
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
