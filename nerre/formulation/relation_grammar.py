"""The grammar of the relation section that the tagged and bio formulations share.

After its entity part, an answer continues with ``"\\nRelations:"`` and then at most
``max_relations`` distinct lines ``"\\n{head} | {relation} | {tail}"`` whose arguments are
entities marked in this very answer (named as :func:`~nerre.formulation.relations.references`
names them, head != tail) whose labels fit the relation type's signature (``head``/``tail`` of its
schema label, either orientation for a symmetric type; unless built with ``signatures=False``), and only lines that the parser reads back as the same triple.
A formulation's grammar subclasses :class:`RelationSectionGrammar`, defines how its entity part
is written, and hands the configurations :class:`InHeader` and :class:`InRelations` to the
``_relations_*`` methods here. Entities are :class:`TaggedSpan` byte offsets into the UTF-8 source.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from nerre.example import Entity, Relation
from nerre.formulation.grammar import Grammar
from nerre.formulation.relations import RELATIONS_HEADER, parse_relations, references

if TYPE_CHECKING:
    from nerre.formulation.base import Formulation
    from nerre.vocabulary import TokenTable


class TaggedSpan(NamedTuple):
    """An entity marked and closed: source bytes ``start:end``."""

    start: int
    end: int
    label: int  #: index into ``schema.entities``


class InHeader(NamedTuple):
    """Writing the relations header after the entity part."""

    written: int  #: bytes of the header written so far
    entities: tuple[TaggedSpan, ...]


class InRelations(NamedTuple):
    """In the relation section."""

    entities: tuple[TaggedSpan, ...]
    lines: frozenset[bytes]  #: the complete lines written (each ``b"\\n" + triple``)
    line: bytes  #: the current line so far (empty between lines)


class RelationLines:
    """The relation lines allowed for one set of marked entities, sorted for prefix search."""

    def __init__(self, lines: Sequence[bytes]):
        self.lines = sorted(set(lines))
        self.set = frozenset(self.lines)
        self._next: dict[bytes, bytes] = {}

    def span(self, prefix: bytes) -> tuple[int, int]:
        """The index range of the lines starting with ``prefix``."""
        lo = bisect.bisect_left(self.lines, prefix)
        upper = prefix.rstrip(b"\xff")
        if not upper:
            return lo, len(self.lines)
        upper = upper[:-1] + bytes((upper[-1] + 1,))
        return lo, bisect.bisect_left(self.lines, upper, lo)

    def next_bytes(self, prefix: bytes) -> bytes:
        hit = self._next.get(prefix)
        if hit is None:
            lo, hi = self.span(prefix)
            n = len(prefix)
            hit = bytes(sorted({line[n] for line in self.lines[lo:hi] if len(line) > n}))
            self._next[prefix] = hit
        return hit

    def status(self, part: bytes, done: frozenset) -> tuple[bool, bool]:
        """(``part`` is a complete new line, ``part`` can still grow into a new line)."""
        lo, hi = self.span(part)
        complete = part in self.set and part not in done
        longer = hi - lo - (1 if part in self.set else 0)
        if longer and done:
            longer -= sum(1 for d in done if len(d) > len(part) and d.startswith(part))
        return complete, longer > 0

    def completion(self, part: bytes, done: frozenset) -> bytes:
        """The bytes every not-yet-written line extending ``part`` continues with."""
        lo, hi = self.span(part)
        return common_prefix([line[len(part) :] for line in self.lines[lo:hi] if line not in done and len(line) > len(part)])


def common_prefix(items: list[bytes]) -> bytes:
    """The longest byte string every item starts with."""
    if not items:
        return b""
    first, last = min(items), max(items)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


class RelationSectionGrammar(Grammar):
    """What the grammars of formulations with a relation section share: the source's bytes, the
    entity labels, and the header and relation lines (see the module docstring).

    Args:
        text: the source text.
        formulation: the formulation (its schema gives labels, display names and relation types).
        vocabulary: the byte strings of the token ids, for the token level.
        max_relations: most relation lines.
        signatures: allow only argument pairs whose labels fit the relation type's signature (see
            :class:`nerre.schema.Label`); False: any two marked entities.
    """

    def __init__(self, text: str, formulation: Formulation, vocabulary: TokenTable | None = None,
                 max_relations: int = 64, signatures: bool = True):
        super().__init__(vocabulary)
        self.text = text
        self.src = text.encode("utf-8")
        offsets = [0]
        for ch in text:
            offsets.append(offsets[-1] + len(ch.encode("utf-8")))
        self.byte_of_char = offsets
        self.char_of_byte = {b: c for c, b in enumerate(offsets)}
        self.n = len(self.src)
        schema = formulation.schema
        self.formulation = formulation
        self.labels = [label.name for label in schema.entities]
        self.displays = [label.display for label in schema.entities]
        self.relation_names = [label.name for label in schema.relations]
        self.relation_displays = [label.display for label in schema.relations]
        self.relation_labels = list(schema.relations)
        self.signatures = signatures
        self.header = RELATIONS_HEADER.encode() if schema.relations else b""
        self.max_relations = max_relations
        self._lines_cache: dict[tuple, RelationLines] = {}

    def entities(self, spans: Sequence[TaggedSpan]) -> list[Entity]:
        """Entities (character offsets, label names) of marked byte spans."""
        c = self.char_of_byte
        return [Entity(c[s], c[e], self.labels[label]) for s, e, label in spans]

    def lines(self, spans: tuple[TaggedSpan, ...]) -> RelationLines:
        """The relation lines allowed once ``spans`` are marked: those the formulation reads back as meant."""
        hit = self._lines_cache.get(spans)
        if hit is None:
            entities = self.entities(spans)
            refs = references(entities, self.text)
            lines = []
            for h in entities:
                for t in entities:
                    if h == t:
                        continue
                    for relation in self.relation_labels:
                        if self.signatures and not relation.fits(h.label, t.label):
                            continue
                        name = relation.name
                        line = f"{refs[h]} | {relation.display} | {refs[t]}"
                        # skip the rare lines the parser would misread (a mention holding " | ")
                        defects: Counter = Counter()
                        read = parse_relations(self.formulation.schema, [line], entities, self.text, defects)
                        if not defects and read == [Relation(h, t, name)]:
                            lines.append(("\n" + line).encode())
            hit = self._lines_cache[spans] = RelationLines(lines)
        return hit

    def openers(self, state: tuple, candidates: list[int], entities: bool = True, relations: bool = True
                ) -> tuple[list[int], list[int]]:
        """No entity openers known here (the tagged grammar adds them); the candidates that start a relation line."""
        return [], self.line_starts(state, candidates) if relations else []

    def line_starts(self, state: tuple, candidates: list[int]) -> list[int]:
        """Indices of the ``candidates`` that start another relation line (between lines: all but eos)."""
        if not any(type(c) is InRelations and not c.line for c in state):
            return []
        eos = self._table().eos_id
        return [k for k, token in enumerate(candidates) if token != eos]

    # -- the relation section's share of the automaton ----------------------------------------------
    def _relations_step(self, c: InHeader | InRelations, byte: int, out: list) -> None:
        """Append to ``out`` the configurations after ``byte`` from header or relation configuration ``c``."""
        if type(c) is InHeader:
            k, ents = c
            if self.header[k] == byte:
                out.append(InHeader(k + 1, ents) if k + 1 < len(self.header) else InRelations(ents, frozenset(), b""))
            return
        ents, done, part = c
        if len(done) >= self.max_relations or (self.finishing and not part):
            return
        part = part + bytes((byte,))
        complete, longer = self.lines(ents).status(part, done)
        if complete:
            out.append(InRelations(ents, done | {part}, b""))
        if longer:
            out.append(InRelations(ents, done, part))

    def _relations_next(self, c: InHeader | InRelations, out: set[int]) -> None:
        if type(c) is InHeader:
            out.add(self.header[c.written])
        elif len(c.lines) < self.max_relations and not (self.finishing and not c.line):
            out.update(self.lines(c.entities).next_bytes(c.line))

    def _relations_remaining(self, c: InHeader | InRelations) -> int:
        if type(c) is InHeader:
            return len(self.header) - c.written
        lines = self.lines(c.entities)  # at a line boundary: room for the longest line, else for the rest of this one
        lo, hi = lines.span(c.line)
        return max((len(line) for line in lines.lines[lo:hi]), default=0) - len(c.line)

    def _relations_completion(self, c: InHeader | InRelations) -> bytes:
        if type(c) is InHeader:
            return self.header[c.written :]
        if not c.line:
            return b""
        lines = self.lines(c.entities)
        lo, hi = lines.span(c.line)
        return min(line for line in lines.lines[lo:hi] if line not in c.lines)[len(c.line) :]

    def _relations_bound(self, c: InHeader | InRelations) -> int:
        if type(c) is InHeader:
            return len(self.header) - c.written
        return max(map(len, self.lines(c.entities).lines), default=0) if c.line else 0

    def _relations_continuation(self, c: InHeader | InRelations) -> bytes:
        if type(c) is InHeader:
            return self.header[c.written :]
        return self.lines(c.entities).completion(c.line, c.lines) if c.line else b""
