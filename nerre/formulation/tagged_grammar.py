"""The grammar of the tagged formulation: faithful copies of the source with valid tags, then valid triples.

The answers :class:`TagGrammar` accepts for a source text are exactly these:

* the source reproduced byte for byte, with opening tags ``<display>`` of configured entity labels
  inserted before token starts and closing tags ``</display>`` closing the innermost open tag at a
  token end (no empty, crossing or unclosed tags, at most ``max_nesting`` open at once; a label may
  open inside itself at the same start, as nested corpora such as BioNLP and SciERC have it). Tokens
  are the corpus's own, else :func:`nerre.example.tokenize`'s, which never split a character as
  a reader sees it;
* text is text: no tag goes where the source itself continues with that very tag string (the
  parser reads such a string as a copy of the source), nor inside a copy of the relations header
  that the source holds;
* when the schema has relation types, ``"\\nRelations:"`` and then at most ``max_relations``
  distinct lines ``"\\n{head} | {relation} | {tail}"`` whose arguments are entities tagged in this
  very answer (named as :func:`~nerre.formulation.relations.references` names them, head != tail)
  whose labels fit the relation type's signature (unless built with ``signatures=False``), and only
  lines that the formulation's parser reads back as the same triple.

A state is a tuple of configurations (several while a ``<`` of the source may be a copy or the
start of a tag), each a named tuple: :class:`Copying`, :class:`InTag`, :class:`InHeader`,
:class:`InRelations`. Offsets in states are byte offsets into the UTF-8 source; labels are
indices into ``schema.entities``. From every state that is not None an accepting state can be
reached, so decoding never gets stuck.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from nerre.example import Entity, Token
from nerre.formulation.relation_grammar import InHeader, InRelations, RelationSectionGrammar, TaggedSpan, common_prefix
from nerre.formulation.tagged import TaggedText

if TYPE_CHECKING:
    from nerre.vocabulary import TokenTable

_LT = ord("<")
_new = tuple.__new__  # builds a named tuple as Copying(...) does, without its Python-level __new__ (a hot path)


class OpenTag(NamedTuple):
    """A tag opened and not yet closed."""

    label: int  #: index into ``schema.entities``
    start: int  #: byte offset in the source where its entity starts


class Copying(NamedTuple):
    """Copying the source; between tags."""

    cursor: int  #: byte offset of the next source byte to copy
    open: tuple[OpenTag, ...]  #: open tags, outermost first
    entities: tuple[TaggedSpan, ...]  #: closed entities, sorted


class InTag(NamedTuple):
    """Inside a tag at ``cursor``, of which ``written`` (starting with ``<``) is written so far."""

    cursor: int
    open: tuple[OpenTag, ...]
    entities: tuple[TaggedSpan, ...]
    written: bytes
    may_open: bool  #: False when started while finishing: only a closing tag may follow


Configuration = Copying | InTag | InHeader | InRelations
TagState = tuple[Configuration, ...]


class TagGrammar(RelationSectionGrammar):
    """The faithful tagged answers to one source text (see the module docstring).

    Build it with :meth:`TaggedText.grammar <nerre.formulation.tagged.TaggedText.grammar>`.

    Args:
        text: the source text.
        tokens: its tokens: tags open only before a token start and close only at a token end.
        formulation: the tagged formulation (its schema gives the labels and display names).
        vocabulary: the byte strings of the token ids, for the token level.
        max_nesting: most tags open at once.
        max_relations: most relation lines.
        signatures: relation arguments must fit their type's signature (False: any two tagged entities).
    """

    def __init__(
        self,
        text: str,
        tokens: Sequence[Token],
        formulation: TaggedText,
        vocabulary: TokenTable | None = None,
        max_nesting: int = 4,
        max_relations: int = 64,
        signatures: bool = True,
    ):
        super().__init__(text, formulation, vocabulary, max_relations, signatures)
        offsets = self.byte_of_char
        self.starts = frozenset(offsets[t.start] for t in tokens if t.end > t.start)
        self.ends = frozenset(offsets[t.end] for t in tokens if t.end > t.start)
        self.last_end = max(self.ends, default=0)
        self.open_tags = [f"<{display}>".encode() for display in self.displays]
        self.close_tags = [f"</{display}>".encode() for display in self.displays]
        # no tag inside a copy of the relations header the source itself holds: the parser finds
        # the relation section by counting intact headers
        self.no_tag: set[int] = set()
        if self.header:
            at = self.src.find(self.header)
            while at >= 0:
                self.no_tag.update(range(at + 1, at + len(self.header)))
                at = self.src.find(self.header, at + 1)
        self.max_nesting = max_nesting
        self._tags_cache: dict[tuple, list] = {}

    def start(self) -> TagState:
        return (Copying(0, (), ()),)

    # -- pieces ---------------------------------------------------------------------------------
    def tags(self, at: int, open: tuple[OpenTag, ...], opening: bool = True
             ) -> list[tuple[bytes, tuple[OpenTag, ...], TaggedSpan | None]]:
        """The tags allowed at byte ``at`` with ``open`` tags: (bytes, open tags after, entity closed).

        ``opening=False`` leaves out the opening tags. A tag string the source itself continues
        with at ``at`` is never a tag there: it is copied as text.
        """
        key = (at, open, opening)
        hit = self._tags_cache.get(key)
        if hit is None:
            hit = []
            src = self.src
            if at in self.no_tag:
                pass
            elif open and at in self.ends and open[-1].start < at:
                label, start = open[-1]
                tag = self.close_tags[label]
                if not src.startswith(tag, at):
                    hit.append((tag, open[:-1], TaggedSpan(start, at, label)))
            if opening and at in self.starts and at not in self.no_tag and len(open) < self.max_nesting:
                for label, tag in enumerate(self.open_tags):
                    if not src.startswith(tag, at):
                        hit.append((tag, open + (OpenTag(label, at),), None))
            self._tags_cache[key] = hit
        return hit

    def tagged(self, state: TagState) -> list[Entity]:
        """The entities an answer that ended in ``state`` tags (its first accepting configuration)."""
        for c in state:
            if (type(c) is Copying and not self.header and c.cursor == self.n and not c.open) or (
                type(c) is InRelations and not c.line
            ):
                return self.entities(c.entities)
        raise ValueError("the answer is not complete in this state")

    # -- the automaton ----------------------------------------------------------------------------
    def step(self, state: TagState, byte: int) -> TagState | None:
        out: list[Configuration] = []
        src, n = self.src, self.n
        for c in state:
            kind = type(c)
            if kind is Copying:
                i, open, ents = c
                if i < n and src[i] == byte and (not open or i < self.last_end):
                    out.append(_new(Copying, (i + 1, open, ents)))
                if byte == _LT and self.tags(i, open, not self.finishing):
                    out.append(_new(InTag, (i, open, ents, b"<", not self.finishing)))
                if i == n and not open and self.header and byte == self.header[0]:
                    out.append(InHeader(1, ents))
            elif kind is InTag:
                i, open, ents, part, opening = c
                part = part + bytes((byte,))
                longer = False
                for tag, after, closed in self.tags(i, open, opening):
                    if tag == part:
                        out.append(_new(Copying, (i, after, tuple(sorted(ents + (closed,))) if closed else ents)))
                    elif len(tag) > len(part) and tag.startswith(part):
                        longer = True
                if longer:
                    out.append(_new(InTag, (i, open, ents, part, opening)))
            else:
                self._relations_step(c, byte, out)
        if not out:
            return None
        if len(out) > 1:
            out = list(dict.fromkeys(out))
        return tuple(out)

    def next_bytes(self, state: TagState) -> set[int]:
        out: set[int] = set()
        for c in state:
            kind = type(c)
            if kind is Copying:
                i, open, _ = c
                if i < self.n and (not open or i < self.last_end):
                    out.add(self.src[i])
                if self.tags(i, open, not self.finishing):
                    out.add(_LT)
                if i == self.n and not open and self.header:
                    out.add(self.header[0])
            elif kind is InTag:
                for tag, _, _ in self.tags(c.cursor, c.open, c.may_open):
                    if len(tag) > len(c.written) and tag.startswith(c.written):
                        out.add(tag[len(c.written)])
            else:
                self._relations_next(c, out)
        return out

    def accepting(self, state: TagState) -> bool:
        for c in state:
            if type(c) is Copying and not self.header and c.cursor == self.n and not c.open:
                return True
            if type(c) is InRelations and not c.line:
                return True
        return False

    # -- decoding aids --------------------------------------------------------------------------------
    def openers(self, state: TagState, candidates: list[int], entities: bool = True, relations: bool = True
                ) -> tuple[list[int], list[int]]:
        """Candidates that commit to opening a tag (every way to read the answer after them is inside an
        opening tag, or has just opened one), and candidates that start a relation line."""
        lines = self.line_starts(state, candidates) if relations else []
        kinds = {type(c) for c in state}
        if not entities or not kinds & {Copying, InTag} or self.finishing:
            return [], lines
        in_tag, data = InTag in kinds, self._table().token_bytes
        before = {t for c in state if type(c) is Copying or type(c) is InTag for t in c.open}
        opening = []
        for k, token in enumerate(candidates):
            if not in_tag and b"<" not in (data[token] or b""):
                continue  # opening a tag writes a "<"
            after = self.advance(state, token)
            if after and all(self._opening(c, before) for c in after):
                opening.append(k)
        return opening, lines

    def _opening(self, c: Configuration, before: set[OpenTag]) -> bool:
        """Whether configuration ``c`` has opened a tag not open ``before``, or can only complete an opening tag."""
        kind = type(c)
        if kind is not Copying and kind is not InTag:
            return False
        if any(t not in before for t in c.open):
            return True
        if kind is InTag:
            ways = [closed for tag, _, closed in self.tags(c.cursor, c.open, c.may_open) if tag.startswith(c.written)]
            return bool(ways) and all(closed is None for closed in ways)
        return False

    def remaining_bytes(self, state: TagState) -> int:
        worst = 0
        for c in state:
            kind = type(c)
            if kind is Copying or kind is InTag:
                size = self.n - c.cursor + len(self.header) + sum(len(self.close_tags[t.label]) for t in c.open)
            else:
                size = self._relations_remaining(c)
            worst = max(worst, size)
        return worst

    def completion(self, state: TagState) -> bytes:
        """A short valid way from ``state`` to the end (closing open tags as early as possible)."""
        c = state[0]
        kind = type(c)
        if kind is InHeader or kind is InRelations:
            return self._relations_completion(c)
        out = []
        i, open = c.cursor, c.open
        if kind is InTag:
            options = [(tag, after) for tag, after, _ in self.tags(i, open, c.may_open) if tag.startswith(c.written)]
            options.sort(key=lambda option: len(option[1]))  # a closing tag first
            tag, open = options[0]
            out.append(tag[len(c.written) :])
        while True:
            while open and (closing := self.tags(i, open, False)):
                tag, open, _ = closing[0]
                out.append(tag)
            if i >= self.n:
                break
            out.append(self.src[i : i + 1])
            i += 1
        out.append(self.header)
        return b"".join(out)

    def completion_bound(self, state: TagState) -> int:
        c = state[0]
        kind = type(c)
        if kind is InHeader or kind is InRelations:
            return self._relations_bound(c)
        longest = max(map(len, self.open_tags + self.close_tags), default=0)
        return self.n - c.cursor + longest * (len(c.open) + 1) + len(self.header)

    def reserve(self) -> list[tuple[bytes, ...]]:
        return list(zip(self.open_tags, self.close_tags))

    def continuation(self, state: TagState, limit: int) -> bytes:
        """The rest of the copy, or the part of a tag, header or relation line that every allowed
        continuation shares (up to about ``limit`` bytes)."""
        if len(state) != 1:
            copying = [c for c in state if type(c) is Copying]
            if not copying:
                return b""
            state = (copying[0],)
        c = state[0]
        kind = type(c)
        if kind is Copying:
            i, open = c.cursor, c.open
            if i < self.n:
                end = min(self.n, i + limit, self.last_end if open else self.n)
                return self.src[i:end]
            if open and self.n in self.ends:
                closing = b"".join(self.close_tags[t.label] for t in reversed(open))
                return closing + self.header
            return self.header if not open else b""
        if kind is InTag:
            rest = [tag[len(c.written) :] for tag, _, _ in self.tags(c.cursor, c.open, c.may_open)
                    if len(tag) > len(c.written) and tag.startswith(c.written)]
            if len(rest) == 1:
                return rest[0] + self.src[c.cursor : min(self.n, c.cursor + limit)]
            return common_prefix(rest)
        return self._relations_continuation(c)
