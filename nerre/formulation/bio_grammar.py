"""The grammar of the bio formulation: the source's tokens in order, each with a valid IOB2 tag, then valid triples.

The answers :class:`BioGrammar` accepts for a source are exactly these:

* one line per token of the source, in order, separated by ``"\\n"``: the token copied byte for
  byte, a space, and a tag: ``O``, ``B-{display}`` of a configured entity label, or
  ``I-{display}`` of the entity the previous token is in (no ``I-X`` after ``O`` or after a
  ``B-Y``/``I-Y`` of another type: IOB2 transitions only);
* when the schema has relation types, the relation section of the tagged formulation
  (:mod:`nerre.formulation.relation_grammar`) over the entities these tags make.

A state is a tuple of configurations (several while a complete tag may also be the start of a
longer one), each a named tuple: :class:`InLine`, :class:`InBioTag`, :class:`Ended` or the shared
:class:`InHeader` and :class:`InRelations`. From every state that is not None an accepting state
can be reached. While the decoder is finishing (its budget running low) no tag starts with ``B``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from nerre.example import Entity, Example
from nerre.formulation.relation_grammar import InHeader, InRelations, RelationSectionGrammar, TaggedSpan, common_prefix

if TYPE_CHECKING:
    from nerre.formulation.bio import BioTags
    from nerre.vocabulary import TokenTable

Open = tuple[int, int] | None
"""The entity the tags so far leave open: (label index, its start byte in the source), or None."""


class InLine(NamedTuple):
    """Writing the line of token ``index``: ``written`` bytes of ``"\\n"`` (except the first line), the token and a space."""

    index: int
    written: int
    open: Open  #: the entity open after the previous token's tag
    entities: tuple[TaggedSpan, ...]  #: entities closed so far, left to right


class InBioTag(NamedTuple):
    """Writing the tag of token ``index``, of which ``written`` is written so far."""

    index: int
    written: bytes
    open: Open  #: the entity open after the previous token's tag
    entities: tuple[TaggedSpan, ...]


class Ended(NamedTuple):
    """An empty source without relation types: nothing (more) to write."""

    entities: tuple[TaggedSpan, ...]


class BioGrammar(RelationSectionGrammar):
    """The valid bio answers to one source (see the module docstring).

    Build it with :meth:`BioTags.grammar <nerre.formulation.bio.BioTags.grammar>`.

    Args:
        example: the source with its tokens (raw text is tokenized by :class:`~nerre.example.Example`).
        formulation: the bio formulation.
        vocabulary: the byte strings of the token ids, for the token level.
        max_relations: most relation lines.
        signatures: relation arguments must fit their type's signature (False: any two entities).
    """

    def __init__(self, example: Example, formulation: BioTags, vocabulary: TokenTable | None = None,
                 max_relations: int = 64, signatures: bool = True):
        super().__init__(example.text, formulation, vocabulary, max_relations, signatures)
        words = formulation.words(example)
        offsets = self.byte_of_char
        tokens = example.tokens or []
        self.token_starts = [offsets[t.start] for t in tokens]
        self.token_ends = [offsets[t.end] for t in tokens]
        self.line_bytes = [(b"\n" if i else b"") + w.encode("utf-8") + b" " for i, w in enumerate(words)]
        self.count = len(words)
        #: every tag: (bytes, prefix, label index); I-tags are allowed only after their own type
        self.all_tags = [(b"O", "O", -1)] + [
            (f"{prefix}-{display}".encode(), prefix, label)
            for prefix in ("B", "I") for label, display in enumerate(self.displays)
        ]
        self.longest_tag = max(len(tag) for tag, _, _ in self.all_tags)
        # bytes from the start of line i to the end of the entity part with O tags
        self._short_rest = [0] * (self.count + 1)
        for i in range(self.count - 1, -1, -1):
            self._short_rest[i] = self._short_rest[i + 1] + len(self.line_bytes[i]) + 1
        self._tags_cache: dict[tuple, list[tuple[bytes, str, int]]] = {}

    def start(self) -> tuple:
        if self.count:
            return (InLine(0, 0, None, ()),)
        return (InHeader(0, ()),) if self.header else (Ended(()),)

    # -- pieces ---------------------------------------------------------------------------------
    def tags(self, open: Open, started: bool) -> list[tuple[bytes, str, int]]:
        """The tags allowed after ``open``; while finishing, a tag not yet ``started`` may not be a ``B``."""
        key = (open[0] if open else None, started or not self.finishing)
        hit = self._tags_cache.get(key)
        if hit is None:
            hit = [(tag, prefix, label) for tag, prefix, label in self.all_tags
                   if (prefix != "I" or (open is not None and label == open[0])) and (prefix != "B" or key[1])]
            self._tags_cache[key] = hit
        return hit

    def _after(self, index: int, prefix: str, label: int, open: Open, entities: tuple) -> tuple[Open, tuple]:
        """The open entity and the closed ones after token ``index`` gets the tag ``prefix``-``label``."""
        if prefix == "I":
            return open, entities
        if open is not None:
            entities = entities + (TaggedSpan(open[1], self.token_ends[index - 1], open[0]),)
        return ((label, self.token_starts[index]) if prefix == "B" else None), entities

    def _closed(self, open: Open, entities: tuple) -> tuple[TaggedSpan, ...]:
        """The entities once the last token's tag is written."""
        if open is None:
            return entities
        return entities + (TaggedSpan(open[1], self.token_ends[-1], open[0]),)

    def _complete(self, c: InBioTag) -> tuple[str, int] | None:
        """(prefix, label) of the tag ``c`` has written, when it is a complete allowed tag."""
        for tag, prefix, label in self.tags(c.open, True):
            if tag == c.written:
                return prefix, label
        return None

    def tagged(self, state: tuple) -> list[Entity]:
        """The entities an answer that ended in ``state`` tags (its first accepting configuration)."""
        for c in state:
            kind = type(c)
            if kind is Ended or (kind is InRelations and not c.line):
                return self.entities(c.entities)
            if kind is InBioTag and not self.header and c.index == self.count - 1 and (done := self._complete(c)):
                return self.entities(self._closed(*self._after(c.index, *done, c.open, c.entities)))
        raise ValueError("the answer is not complete in this state")

    # -- the automaton ----------------------------------------------------------------------------
    def step(self, state: tuple, byte: int) -> tuple | None:
        out: list = []
        for c in state:
            kind = type(c)
            if kind is InLine:
                i, k, open, ents = c
                line = self.line_bytes[i]
                if line[k] == byte:
                    out.append(InLine(i, k + 1, open, ents) if k + 1 < len(line) else InBioTag(i, b"", open, ents))
            elif kind is InBioTag:
                i, written, open, ents = c
                part = written + bytes((byte,))
                if any(len(tag) > len(written) and tag.startswith(part) for tag, _, _ in self.tags(open, bool(written))):
                    out.append(InBioTag(i, part, open, ents))
                done = self._complete(c)
                if done is not None:
                    after_open, after_ents = self._after(i, *done, open, ents)
                    if i + 1 < self.count:
                        if self.line_bytes[i + 1][0] == byte:
                            out.append(InLine(i + 1, 1, after_open, after_ents))
                    elif self.header and self.header[0] == byte:
                        out.append(InHeader(1, self._closed(after_open, after_ents)))
            elif kind is InHeader or kind is InRelations:
                self._relations_step(c, byte, out)
        if not out:
            return None
        return tuple(dict.fromkeys(out)) if len(out) > 1 else tuple(out)

    def next_bytes(self, state: tuple) -> set[int]:
        out: set[int] = set()
        for c in state:
            kind = type(c)
            if kind is InLine:
                out.add(self.line_bytes[c.index][c.written])
            elif kind is InBioTag:
                n = len(c.written)
                out.update(tag[n] for tag, _, _ in self.tags(c.open, bool(c.written))
                           if len(tag) > n and tag.startswith(c.written))
                if self._complete(c) is not None:
                    if c.index + 1 < self.count:
                        out.add(self.line_bytes[c.index + 1][0])
                    elif self.header:
                        out.add(self.header[0])
            elif kind is InHeader or kind is InRelations:
                self._relations_next(c, out)
        return out

    def accepting(self, state: tuple) -> bool:
        for c in state:
            kind = type(c)
            if kind is Ended or (kind is InRelations and not c.line):
                return True
            if (kind is InBioTag and not self.header and c.index == self.count - 1
                    and self._complete(c) is not None):
                return True
        return False

    # -- decoding aids --------------------------------------------------------------------------------
    def _finish_tag(self, c: InBioTag) -> bytes:
        """The shortest way to complete the tag ``c`` is writing (``O`` when none is started)."""
        if self._complete(c) is not None:
            return b""
        rest = [tag[len(c.written) :] for tag, _, _ in self.tags(c.open, bool(c.written)) if tag.startswith(c.written)]
        return min(rest, key=len)

    def _lines_from(self, index: int, tag: bytes = b"O") -> bytes:
        """Lines ``index``... each with ``tag``."""
        return b"".join(line + tag for line in self.line_bytes[index:])

    def remaining_bytes(self, state: tuple) -> int:
        worst = 0
        for c in state:
            kind = type(c)
            # like the tagged grammar, which counts the closing tags owed but no new ones: the tokens left
            # with O tags (a B tag is new markup, which the decoder stops allowing when the budget runs low)
            if kind is InLine or kind is InBioTag:
                size = self._o_tags_to_end(c)
            elif kind is Ended:
                size = 0
            else:
                size = self._relations_remaining(c)
            worst = max(worst, size)
        return worst

    def completion(self, state: tuple) -> bytes:
        """A short valid way from ``state`` to the end: ``O`` for every token left, then the header."""
        c = state[0]
        kind = type(c)
        if kind is Ended:
            return b""
        if kind is InHeader or kind is InRelations:
            return self._relations_completion(c)
        if kind is InLine:
            return self.line_bytes[c.index][c.written :] + b"O" + self._lines_from(c.index + 1) + self.header
        return self._finish_tag(c) + self._lines_from(c.index + 1) + self.header

    def completion_bound(self, state: tuple) -> int:
        c = state[0]
        kind = type(c)
        if kind is Ended:
            return 0
        if kind is InHeader or kind is InRelations:
            return self._relations_bound(c)
        return self._o_tags_to_end(c)

    def _o_tags_to_end(self, c: InLine | InBioTag) -> int:
        """Bytes to the end of the entity part and the header with O for every token left (the current
        tag counted at its longest)."""
        if type(c) is InLine:
            return self._short_rest[c.index] - c.written + len(self.header)
        return self.longest_tag + self._short_rest[c.index + 1] + len(self.header)

    def reserve(self) -> list[tuple[bytes, ...]]:
        return [(tag,) for tag, prefix, _ in self.all_tags if prefix == "B"]

    def continuation(self, state: tuple, limit: int) -> bytes:
        """The rest of the line, and then the lines after it as if their tags were ``O`` (most tags are);
        inside a tag, what every allowed tag shares (up to about ``limit`` bytes)."""
        c = state[0]
        kind = type(c)
        if kind is Ended:
            return b""
        if kind is InHeader or kind is InRelations:
            return self._relations_continuation(c)
        if kind is InLine:
            out = self.line_bytes[c.index][c.written :] + b"O"
            index = c.index + 1
        elif not c.written:
            out, index = b"O", c.index + 1
        else:
            rest = [tag[len(c.written) :] for tag, _, _ in self.tags(c.open, True) if tag.startswith(c.written)]
            if len(state) > 1 or len(rest) != 1:  # which tag is not settled yet
                return common_prefix(rest) if len(state) == 1 else b""
            out, index = rest[0], c.index + 1
        while index < self.count and len(out) < limit:
            out += self.line_bytes[index] + b"O"
            index += 1
        if index == self.count and len(out) < limit:
            out += self.header
        return out[: max(limit, 1)]
