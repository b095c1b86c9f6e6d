"""Faithful, fast decoding: constrained greedy decoding of the tagged formulation, with lossless speculation.

Constrained mode (``DecodeOptions(constrained=True)``, tagged formulation only) can only produce
answers that are a faithful copy of the input with valid tags:

* the input reproduced byte for byte, with opening tags ``<display>`` of configured entity labels
  inserted before token starts and closing tags ``</display>`` closing the innermost open tag at a
  token end (no empty, crossing or unclosed tags, at most ``max_nesting`` open at once);
* when the schema has relation types, ``"\\nRelations:"`` and then at most ``max_relations``
  distinct lines ``"\\n{head} | {relation} | {tail}"`` whose arguments are entities tagged in this
  very answer (named as :func:`~nerre.formulation.relations.references` names them, head != tail,
  and only lines the formulation's decoder reads back as the same triple);
* end-of-sequence, allowed only once all of the above is complete.

When the token budget runs low, no new tag opens and no new relation line starts; right before it
runs out, the shortest completion (closing the open tags as early as possible) is written without
the model, so even a cut-short answer is well formed. No tag goes inside a copy of the relations
header that the source itself holds (the tolerant decoder would miss the relation section).

At each step the token chosen is the highest-scoring token among those that keep the answer a
valid prefix (``argmax`` over the valid set, ties to the lowest id). The valid set is enumerated
exactly: a byte-level NFA of the answer language (:class:`TagGrammar`) is walked together with the
byte strings of the vocabulary (:class:`TokenTable`), so only the logits of valid tokens are ever
computed (a gather of a few LM-head rows instead of the full vocabulary).

Speed comes from the answer being mostly a copy: the next ``speculate`` tokens of the copy (the
tokenization of the source from the cursor, or the rest of a tag or relation line once it is
determined) are proposed and verified in one forward pass over the KV cache; the proposal is kept
up to the first position where the constrained greedy choice differs, that choice is taken there,
and the cache is cropped. The result is the same as step-by-step constrained greedy decoding
(up to floating-point noise between a one-token and a many-token forward pass). The prompt header,
identical across inputs, is prefilled once and its cache shared by every input. Several inputs are
decoded together, their new tokens packed into one forward pass (see :class:`FaithfulDecoder`).

Unconstrained mode (``constrained=False``) is plain greedy ``model.generate`` (batched, optionally
with ``prompt_lookup_num_tokens``); its answers go through the formulation's tolerant ``decode``,
which counts defects (:func:`parse_answers`).
"""

from __future__ import annotations

import bisect
import copy
import logging
import re
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedTokenizerBase

from nerre.example import Entity, Example, Relation, Token, tokenize
from nerre.formulation import Formulation
from nerre.formulation.base import Source
from nerre.formulation.relations import RELATIONS_HEADER, parse_relations, references
from nerre.formulation.tagged import TaggedText
from nerre.models import causal_lm, decoder
from nerre.prompt import PromptBuilder, prompt_ids

log = logging.getLogger(__name__)

__all__ = [
    "DecodeOptions",
    "answer_budget",
    "DecodeStats",
    "FaithfulDecoder",
    "TagGrammar",
    "TokenTable",
    "decode_texts",
    "parse_answers",
    "prompt_ids",
    "token_table",
    "valid_ids",
]

def answer_budget(source_tokens: int, has_relations: bool, scale: int = 2) -> int:
    """A generous number of new tokens for the answer to a source of ``source_tokens`` tokens, whose entity
    part takes up to ``scale`` tokens per source token (:attr:`Formulation.answer_scale`)."""
    return scale * source_tokens + 32 + (4 * source_tokens if has_relations else 0)
Progress = Callable[[int, int], None]


@dataclass
class DecodeOptions:
    """How answers are generated.

    Args:
        constrained: faithful constrained decoding (tagged formulation only); off: plain greedy ``generate``.
        batch_size: inputs decoded together: per ``generate`` call in unconstrained mode; in
            constrained mode, inputs whose new tokens share one packed forward pass.
        speculate: most copy tokens proposed per input and forward pass in constrained mode
            (0: step by step); the length adapts to how much of each proposal is taken.
        max_new_tokens: cap on answer tokens, eos included (None: :func:`answer_budget`
            of the input).
        prompt_lookup: unconstrained mode only: ``prompt_lookup_num_tokens`` for ``generate``
            (prompt-lookup speculation; runs one input at a time).
        max_relations: constrained mode: most relation lines per answer.
        max_nesting: constrained mode: most entity tags open at once.
        max_length: constrained mode: the training window (prompt + answer tokens); each answer's
            budget is capped to what the prompt leaves of it, though never below the input's length
            plus a few tokens.
    """

    constrained: bool = True
    batch_size: int = 8
    speculate: int = 16
    max_new_tokens: int | None = None
    prompt_lookup: int | None = None
    max_relations: int = 64
    max_nesting: int = 4
    max_length: int | None = None


@dataclass
class DecodeStats:
    """Counters of a decoding run (summed over calls)."""

    inputs: int = 0
    forward_passes: int = 0
    answer_tokens: int = 0
    proposed_tokens: int = 0
    accepted_tokens: int = 0
    seconds: float = 0.0
    #: answers whose ``tokenizer.decode`` differs from the validated byte string (should stay 0)
    decode_mismatches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------- prompts


def _source(item: Source) -> tuple[str, list[Token]]:
    if isinstance(item, Example):
        return item.text, list(item.tokens or tokenize(item.text))
    return item, tokenize(item)


# ----------------------------------------------------------------------------- vocabulary as bytes


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class TokenTable:
    """The byte string every token id stands for, and lookups the valid-token search needs.

    Handles byte-level BPE (GPT-2 style) and SentencePiece-style tokenizers (``▁`` for spaces,
    ``<0xNN>`` byte-fallback pieces, as Gemma's); for other decoders each token is decoded after
    a fixed anchor token (slower to build, and tokens that are partial UTF-8 are left out).
    Special tokens never stand for text; the end-of-sequence token is handled apart.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.eos_id = tokenizer.eos_token_id
        if self.eos_id is None:
            raise ValueError("constrained decoding needs a tokenizer with an eos token")
        size = len(tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
        special = set(tokenizer.all_special_ids)
        special.update(i for i, t in tokenizer.added_tokens_decoder.items() if getattr(t, "special", False))
        kind = _decoder_kind(tokenizer)
        self.kind = kind
        table: list[bytes | None] = [None] * size
        if kind == "byte_level":
            inverse = {c: b for b, c in _bytes_to_unicode().items()}
            added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
            for i, piece in enumerate(pieces):
                if i in special or piece is None:
                    continue
                if i in added:
                    table[i] = added[i].encode("utf-8")
                elif all(c in inverse for c in piece):
                    table[i] = bytes(inverse[c] for c in piece)
        elif kind == "sentencepiece":
            for i, piece in enumerate(pieces):
                if i in special or piece is None:
                    continue
                m = _BYTE_PIECE.fullmatch(piece)
                table[i] = bytes((int(m.group(1), 16),)) if m else piece.replace("▁", " ").encode("utf-8")
        else:
            anchor = tokenizer("a", add_special_tokens=False)["input_ids"][-1:]
            base = tokenizer.decode(anchor)
            for i in range(size):
                if i in special:
                    continue
                text = tokenizer.decode(anchor + [i])
                if text.startswith(base) and "\ufffd" not in text:
                    table[i] = text[len(base) :].encode("utf-8")
        self.token_bytes = table
        by_bytes: dict[bytes, list[int]] = {}
        for i, b in enumerate(table):
            if b:  # empty strings would never advance the answer
                by_bytes.setdefault(b, []).append(i)
        self.by_bytes = by_bytes
        self.sorted = sorted(by_bytes)
        self.longest = max(map(len, by_bytes), default=1)

    def spell(self, data: bytes) -> list[int] | None:
        """Some tokens (longest match first) whose bytes concatenate to ``data``; None when impossible."""
        ids, at = [], 0
        while at < len(data):
            for size in range(min(self.longest, len(data) - at), 0, -1):
                hit = self.by_bytes.get(data[at : at + size])
                if hit:
                    ids.append(hit[0])
                    at += size
                    break
            else:
                return None
        return ids

    def is_prefix(self, prefix: bytes) -> bool:
        """Whether some token's bytes start with ``prefix``."""
        i = bisect.bisect_left(self.sorted, prefix)
        return i < len(self.sorted) and self.sorted[i].startswith(prefix)


def _decoder_kind(tokenizer: PreTrainedTokenizerBase) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = ""
    if backend is not None and backend.decoder is not None:
        try:
            state = backend.decoder.__getstate__().decode("utf-8", "replace")
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - exotic decoders
            state = repr(backend.decoder)
    if '"ByteLevel"' in state:
        return "byte_level"
    if '"ByteFallback"' in state and "▁" in state and '"Strip"' not in state:
        return "sentencepiece"
    return "generic"


_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_table(tokenizer: PreTrainedTokenizerBase) -> TokenTable:
    """The :class:`TokenTable` of ``tokenizer``, built once per tokenizer (about 2 s for Gemma's 262k tokens)."""
    table = _TABLES.get(tokenizer)
    if table is None or len(table.token_bytes) != len(tokenizer):
        table = _TABLES[tokenizer] = TokenTable(tokenizer)
    return table


# ----------------------------------------------------------------------------- the answer language

# Configurations of the NFA (tuples, so states hash and compare cheaply):
#   (TEXT, i, stack, ents)        copying the source; i: byte cursor; stack: ((label, start), ...) open tags
#   (TAG, i, stack, ents, part, opening)  inside a tag whose bytes so far are ``part`` (starting with b"<");
#                                 opening: whether it may be an opening tag (not when started while finishing)
#   (HEAD, k, ents)               k bytes of the relations header written
#   (LINE, ents, done, part)      relation section; ``part``: the current line so far ("" between lines)
# ents: the entities closed so far, a sorted tuple of (start, end, label) in bytes; done: frozenset of lines.
TEXT, TAG, HEAD, LINE = 0, 1, 2, 3
_LT = ord("<")


class _Lines:
    """The relation lines allowed for one set of tagged entities, sorted for prefix search."""

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
        rest = [line[len(part) :] for line in self.lines[lo:hi] if line not in done and len(line) > len(part)]
        if not rest:
            return b""
        first, last = min(rest), max(rest)
        n = 0
        while n < min(len(first), len(last)) and first[n] == last[n]:
            n += 1
        return first[:n]


class TagGrammar:
    """The faithful tagged answers to one source text, as a byte-level NFA.

    A state is a tuple of configurations (several when the source itself holds ``<``, which can be
    copied or start a tag). :meth:`step` consumes one byte, :meth:`next_bytes` lists the bytes a
    state can continue with, :meth:`accepting` says whether the answer may end there. From every
    non-empty state an accepting state is reachable, so decoding never gets stuck.

    Args:
        text: the source text.
        tokens: its tokens: tags open only before a token start and close only at a token end.
        formulation: the tagged formulation (its schema gives the labels and display names).
        max_nesting: most tags open at once.
        max_relations: most relation lines.
        bytes_per_token: average bytes per model token of the source, for :meth:`finish_cost`.

    Attributes:
        finishing: set it when the token budget runs low: from then on no new tag may open and no
            new relation line may start, so the answer heads straight for its end.
    """

    def __init__(
        self,
        text: str,
        tokens: Sequence[Token],
        formulation: TaggedText,
        max_nesting: int = 4,
        max_relations: int = 64,
        bytes_per_token: float = 2.0,
    ):
        self.text = text
        self.src = text.encode("utf-8")
        offsets = [0]
        for ch in text:
            offsets.append(offsets[-1] + len(ch.encode("utf-8")))
        self.byte_of_char = offsets
        self.char_of_byte = {b: c for c, b in enumerate(offsets)}
        self.n = len(self.src)
        self.starts = frozenset(offsets[t.start] for t in tokens if t.end > t.start)
        self.ends = frozenset(offsets[t.end] for t in tokens if t.end > t.start)
        self.last_end = max(self.ends, default=0)
        schema = formulation.schema
        self.labels = [label.name for label in schema.entities]
        self.open_tags = [f"<{label.display}>".encode() for label in schema.entities]
        self.close_tags = [f"</{label.display}>".encode() for label in schema.entities]
        self.formulation = formulation
        self.relation_names = [label.name for label in schema.relations]
        self.relation_displays = [label.display for label in schema.relations]
        self.header = RELATIONS_HEADER.encode() if schema.relations else b""
        # no tag inside a copy of the relations header the source itself holds: the tolerant decoder
        # finds the relation section by counting intact headers
        self.no_tag: set[int] = set()
        if self.header:
            at = self.src.find(self.header)
            while at >= 0:
                self.no_tag.update(range(at + 1, at + len(self.header)))
                at = self.src.find(self.header, at + 1)
        self.max_nesting, self.max_relations = max_nesting, max_relations
        self.bytes_per_token = max(1.0, bytes_per_token)
        self.finishing = False
        self._tags_cache: dict[tuple, list] = {}
        self._lines_cache: dict[tuple, _Lines] = {}

    def initial(self) -> tuple:
        return ((TEXT, 0, (), ()),)

    # -- pieces ---------------------------------------------------------------------------------
    def tags(self, i: int, stack: tuple, opening: bool = True) -> list[tuple[bytes, tuple, tuple | None]]:
        """The tags allowed at byte ``i`` with ``stack`` open: (bytes, new stack, closed entity).

        ``opening=False`` leaves out the opening tags.
        """
        key = (i, stack, opening)
        hit = self._tags_cache.get(key)
        if hit is None:
            hit = []
            if i in self.no_tag:
                pass
            elif stack and i in self.ends and stack[-1][1] < i:
                label, start = stack[-1]
                hit.append((self.close_tags[label], stack[:-1], (start, i, label)))
            if opening and i in self.starts and i not in self.no_tag and len(stack) < self.max_nesting:
                for label, tag in enumerate(self.open_tags):
                    if (label, i) not in stack:
                        hit.append((tag, stack + ((label, i),), None))
            self._tags_cache[key] = hit
        return hit

    def entities(self, ents: tuple) -> list[Entity]:
        """Entities (character offsets, label names) from the byte triples of a configuration."""
        c = self.char_of_byte
        return [Entity(c[s], c[e], self.labels[label]) for s, e, label in ents]

    def lines(self, ents: tuple) -> _Lines:
        """The relation lines allowed once ``ents`` are tagged: those the formulation reads back as meant."""
        hit = self._lines_cache.get(ents)
        if hit is None:
            entities = self.entities(ents)
            refs = references(entities, self.text)
            lines = []
            for h in entities:
                for t in entities:
                    if h == t:
                        continue
                    for name, label in zip(self.relation_names, self.relation_displays):
                        line = f"{refs[h]} | {label} | {refs[t]}"
                        # skip the rare lines the tolerant decoder would misread (a mention holding " | ")
                        defects: Counter = Counter()
                        read = parse_relations(self.formulation.schema, [line], entities, self.text, defects)
                        if not defects and read == [Relation(h, t, name)]:
                            lines.append(("\n" + line).encode())
            hit = self._lines_cache[ents] = _Lines(lines)
        return hit

    # -- the automaton ----------------------------------------------------------------------------
    def step(self, state: tuple, byte: int) -> tuple:
        """The state after ``byte`` (empty: ``byte`` is not allowed)."""
        out = []
        src, n = self.src, self.n
        for c in state:
            kind = c[0]
            if kind == TEXT:
                _, i, stack, ents = c
                if i < n and src[i] == byte and (not stack or i < self.last_end):
                    out.append((TEXT, i + 1, stack, ents))
                if byte == _LT and self.tags(i, stack, not self.finishing):
                    out.append((TAG, i, stack, ents, b"<", not self.finishing))
                if i == n and not stack and self.header and byte == self.header[0]:
                    out.append((HEAD, 1, ents))
            elif kind == TAG:
                _, i, stack, ents, part, opening = c
                part = part + bytes((byte,))
                longer = False
                for tag, new_stack, closed in self.tags(i, stack, opening):
                    if tag == part:
                        new_ents = tuple(sorted(ents + (closed,))) if closed else ents
                        out.append((TEXT, i, new_stack, new_ents))
                    elif len(tag) > len(part) and tag.startswith(part):
                        longer = True
                if longer:
                    out.append((TAG, i, stack, ents, part, opening))
            elif kind == HEAD:
                _, k, ents = c
                if self.header[k] == byte:
                    out.append((HEAD, k + 1, ents) if k + 1 < len(self.header) else (LINE, ents, frozenset(), b""))
            else:
                _, ents, done, part = c
                if len(done) >= self.max_relations or (self.finishing and not part):
                    continue
                part = part + bytes((byte,))
                complete, longer = self.lines(ents).status(part, done)
                if complete:
                    out.append((LINE, ents, done | {part}, b""))
                if longer:
                    out.append((LINE, ents, done, part))
        if len(out) > 1:
            out = list(dict.fromkeys(out))
        return tuple(out)

    def advance(self, state: tuple, data: bytes) -> tuple:
        """The state after ``data`` (empty when not allowed)."""
        for byte in data:
            state = self.step(state, byte)
            if not state:
                break
        return state

    def next_bytes(self, state: tuple) -> set[int]:
        """Bytes that may follow (a superset: each is checked by :meth:`step`)."""
        out: set[int] = set()
        for c in state:
            kind = c[0]
            if kind == TEXT:
                _, i, stack, _ = c
                if i < self.n and (not stack or i < self.last_end):
                    out.add(self.src[i])
                if self.tags(i, stack, not self.finishing):
                    out.add(_LT)
                if i == self.n and not stack and self.header:
                    out.add(self.header[0])
            elif kind == TAG:
                _, i, stack, _, part, opening = c
                for tag, _, _ in self.tags(i, stack, opening):
                    if len(tag) > len(part) and tag.startswith(part):
                        out.add(tag[len(part)])
            elif kind == HEAD:
                out.add(self.header[c[1]])
            elif len(c[2]) < self.max_relations and not (self.finishing and not c[3]):
                out.update(self.lines(c[1]).next_bytes(c[3]))
        return out

    def accepting(self, state: tuple) -> bool:
        """Whether the answer may end in ``state``."""
        for c in state:
            if c[0] == TEXT and not self.header and c[1] == self.n and not c[2]:
                return True
            if c[0] == LINE and not c[3]:
                return True
        return False

    def finish_cost(self, state: tuple) -> int:
        """About how many tokens the way to the end takes (a generous estimate), eos included."""
        worst = 0
        for c in state:
            kind, size = c[0], 0
            if kind in (TEXT, TAG):
                i, stack = c[1], c[2]
                size = self.n - i + len(self.header) + sum(len(self.close_tags[label]) for label, _ in stack)
            elif kind == HEAD:
                size = len(self.header) - c[1]
            else:  # at a line boundary: room for the longest line, else for the rest of this one
                lines = self.lines(c[1])
                lo, hi = lines.span(c[3])
                size = max((len(line) for line in lines.lines[lo:hi]), default=0) - len(c[3])
            worst = max(worst, int(1.5 * size / self.bytes_per_token) + 4)
        return worst

    def completion(self, state: tuple) -> bytes:
        """A short valid way from ``state`` to the end (closing open tags as early as possible)."""
        c = state[0]
        kind = c[0]
        if kind == HEAD:
            return self.header[c[1] :]
        if kind == LINE:
            ents, done, part = c[1], c[2], c[3]
            if not part:
                return b""
            lines = self.lines(ents)
            lo, hi = lines.span(part)
            return min(line for line in lines.lines[lo:hi] if line not in done)[len(part) :]
        out = []
        i, stack = c[1], c[2]
        if kind == TAG:
            part = c[4]
            options = [(tag, new) for tag, new, closed in self.tags(i, stack, c[5]) if tag.startswith(part)]
            options.sort(key=lambda option: len(option[1]))  # a closing tag first
            tag, stack = options[0]
            out.append(tag[len(part) :])
        while True:
            while stack and i in self.ends and i not in self.no_tag and stack[-1][1] < i:
                out.append(self.close_tags[stack[-1][0]])
                stack = stack[:-1]
            if i >= self.n:
                break
            out.append(self.src[i : i + 1])
            i += 1
        out.append(self.header)
        return b"".join(out)

    def completion_bound(self, state: tuple) -> int:
        """An upper bound on the bytes of :meth:`completion` (cheap)."""
        c = state[0]
        kind = c[0]
        if kind == HEAD:
            return len(self.header) - c[1]
        if kind == LINE:
            return max(map(len, self.lines(c[1]).lines), default=0) if c[3] else 0
        longest = max(map(len, self.open_tags + self.close_tags), default=0)
        return self.n - c[1] + longest * (len(c[2]) + 1) + len(self.header)

    def forced(self, state: tuple, limit: int) -> bytes:
        """A likely continuation (up to about ``limit`` bytes) to propose: the rest of the copy, or
        the part of a tag, header or relation line that every allowed continuation shares."""
        if len(state) != 1:
            texts = [c for c in state if c[0] == TEXT]
            if not texts:
                return b""
            state = (texts[0],)
        c = state[0]
        kind = c[0]
        if kind == TEXT:
            _, i, stack, _ = c
            if i < self.n:
                end = min(self.n, i + limit, self.last_end if stack else self.n)
                return self.src[i:end]
            if stack and self.n in self.ends:
                closing = b"".join(self.close_tags[label] for label, _ in reversed(stack))
                return closing + self.header
            return self.header if not stack else b""
        if kind == TAG:
            _, i, stack, _, part, opening = c
            rest = [tag[len(part) :] for tag, _, _ in self.tags(i, stack, opening)
                    if len(tag) > len(part) and tag.startswith(part)]
            if len(rest) == 1:
                return rest[0] + self.src[i : min(self.n, i + limit)]
            return _common_prefix(rest)
        if kind == HEAD:
            return self.header[c[1] :]
        _, ents, done, part = c
        return self.lines(ents).completion(part, done) if part else b""


def _common_prefix(items: list[bytes]) -> bytes:
    if not items:
        return b""
    first, last = min(items), max(items)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def valid_ids(grammar: TagGrammar, table: TokenTable, state: tuple) -> list[int]:
    """Every token id whose bytes keep the answer a valid prefix (plus eos when it may end), sorted."""
    ids: list[int] = []
    todo = [(b"", state)]
    by_bytes, is_prefix = table.by_bytes, table.is_prefix
    while todo:
        path, st = todo.pop()
        for byte in grammar.next_bytes(st):
            longer = path + bytes((byte,))
            if not is_prefix(longer):
                continue
            nxt = grammar.step(st, byte)
            if not nxt:
                continue
            hit = by_bytes.get(longer)
            if hit:
                ids.extend(hit)
            todo.append((longer, nxt))
    if grammar.accepting(state):
        ids.append(table.eos_id)
    ids.sort()
    return ids

# ----------------------------------------------------------------------------- packed forward passes

PACKED_ATTENTION = "nerre_packed"


class _RowCache:
    """The keys and values of one sequence, one tensor pair per layer: ``[1, kv_heads, length, head_dim]``."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]):
        self.keys, self.values = keys, values

    @classmethod
    def from_cache(cls, cache: DynamicCache, length: int) -> _RowCache:
        return cls([layer.keys[:, :, :length] for layer in cache.layers],
                   [layer.values[:, :, :length] for layer in cache.layers])

    def __len__(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def crop(self, remove: int) -> None:
        if remove > 0:
            self.keys = [k[:, :, :-remove] for k in self.keys]
            self.values = [v[:, :, :-remove] for v in self.values]


class _Packed(DynamicCache):
    """One packed forward pass: the new tokens of several sequences in a row, each attending only to its own cache.

    Handed to the model both as its cache (``update`` appends each sequence's new keys and values to
    that sequence's :class:`_RowCache`) and as its attention mask (read by :func:`_packed_attention`).
    """

    def __init__(self, rows: list[_RowCache], segments: list[tuple[int, int]]):
        super().__init__()
        self.rows, self.segments = rows, segments
        self._masks: dict[tuple, torch.Tensor | None] = {}

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        for row, (a, b) in zip(self.rows, self.segments):
            k, v = key_states[:, :, a:b], value_states[:, :, a:b]
            if layer_idx < len(row.keys):
                row.keys[layer_idx] = torch.cat([row.keys[layer_idx], k], dim=2)
                row.values[layer_idx] = torch.cat([row.values[layer_idx], v], dim=2)
            else:
                row.keys.append(k)
                row.values.append(v)
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0

    def mask(self, new: int, total: int, window: int | None, device: torch.device) -> torch.Tensor | None:
        """Which of ``total`` keys each of the ``new`` last queries sees (None: all of them)."""
        key = (new, total, window)
        if key not in self._masks:
            q = torch.arange(total - new, total, device=device)[:, None]
            k = torch.arange(total, device=device)[None, :]
            allowed = k <= q
            if window:
                allowed &= k > q - window
            self._masks[key] = None if bool(allowed.all()) else allowed
        return self._masks[key]


def _packed_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, sliding_window=None,
                      softcap=None, **kwargs):
    """Attention for a :class:`_Packed` pass: each sequence's queries over that sequence's keys only."""
    pack: _Packed = attention_mask
    outputs = []
    for row, (a, b) in zip(pack.rows, pack.segments):
        q = query[:, :, a:b]
        k, v = row.keys[module.layer_idx], row.values[module.layer_idx]
        if k.shape[1] != q.shape[1]:
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
        mask = pack.mask(b - a, k.shape[2], sliding_window, q.device)
        if softcap is None:
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling)
        else:  # logit softcapping (Gemma 2): the eager formula
            scores = (q @ k.transpose(2, 3)) * (scaling if scaling is not None else q.shape[-1] ** -0.5)
            scores = torch.tanh(scores / softcap) * softcap
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            out = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v
        outputs.append(out)
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def _register_packed_attention() -> None:
    from transformers import AttentionInterface

    if PACKED_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(PACKED_ATTENTION, _packed_attention)


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass
class _Row:
    """One input being decoded in constrained mode."""

    index: int
    text: str
    grammar: TagGrammar
    state: tuple
    budget: int
    margin: int
    k: int
    cache: Any
    pending: list[int]
    answer: list[int] = field(default_factory=list)
    proposal: list[int] = field(default_factory=list)
    finished: bool = False


# ----------------------------------------------------------------------------- the decoder


class FaithfulDecoder:
    """Generates answers for a model, a tokenizer, prompts and a formulation; see the module docstring.

    In constrained mode up to ``options.batch_size`` inputs are decoded together: the new tokens of
    all of them (prompt rest, or last token plus proposal) go through the model in one packed
    forward pass, each attending only to its own keys and values (a small attention function
    registered with transformers). This shares the cost of reading the weights, which dominates a
    forward pass over a few tokens on a CPU. The packed pass is checked against the model's own
    forward pass once; when they disagree (an architecture it does not fit), inputs are decoded one
    at a time.

    Args:
        model: a causal LM (plain or peft-wrapped), in eval mode.
        tokenizer: its tokenizer.
        prompts: builds the prompt of each input.
        formulation: decodes answers; constrained mode needs :class:`TaggedText`.
        options: how to decode.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        prompts: PromptBuilder,
        formulation: Formulation,
        options: DecodeOptions | None = None,
    ):
        self.model, self.tokenizer, self.prompts, self.formulation = model, tokenizer, prompts, formulation
        self.options = options or DecodeOptions()
        self.stats = DecodeStats()
        #: constrained mode: the answer token ids of the last :meth:`decode` call (eos left out)
        self.token_ids: list[list[int]] = []
        if self.options.constrained:
            if not isinstance(formulation, TaggedText):
                raise ValueError(
                    f"constrained decoding is only available for the tagged formulation, not {formulation.name!r}; "
                    "use unconstrained decoding (DecodeOptions(constrained=False))"
                )
            self.table = token_table(tokenizer)
            self.body = decoder(model)
            head = causal_lm(model).get_output_embeddings()
            self._head_weight = head.weight if type(head) is nn.Linear else None
            self._head_bias = head.bias if type(head) is nn.Linear else None
            self._head = head
        self._prefix_ids: list[int] = []
        self._prefix_cache: DynamicCache | None = None
        self._packing: bool | None = None  # decided on first use

    # -- public -----------------------------------------------------------------------------------
    def decode(self, sources: Sequence[Source], progress: Progress | None = None) -> list[str]:
        """The raw answers for ``sources`` (texts, or examples whose tokens give the tag positions)."""
        started = time.perf_counter()
        if self.options.constrained:
            answers = self._constrained(sources, progress)
        else:
            answers = self._unconstrained(sources, progress)
        self.stats.inputs += len(sources)
        self.stats.seconds += time.perf_counter() - started
        return answers

    # -- unconstrained ------------------------------------------------------------------------------
    @torch.inference_mode()
    def _unconstrained(self, sources: Sequence[Source], progress: Progress | None) -> list[str]:
        texts = [_source(s)[0] for s in sources]
        ids = [prompt_ids(self.tokenizer, self.prompts, t) for t in texts]
        budgets = [self._budget(t) for t in texts]
        lookup = self.options.prompt_lookup
        size = 1 if lookup else max(1, self.options.batch_size)
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        answers: list[str] = [""] * len(texts)
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        device = self._device()
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in rows], device=device)
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in rows], device=device)
            kwargs: dict[str, Any] = {"prompt_lookup_num_tokens": lookup} if lookup else {}
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=max(budgets[i] for i in rows),
                do_sample=False, pad_token_id=pad, eos_token_id=eos, **kwargs,
            )
            for row, i in enumerate(rows):
                new = out[row, width:].tolist()[: budgets[i]]
                if eos in new:
                    new = new[: new.index(eos) + 1]
                self.stats.answer_tokens += len(new)
                new = new[:-1] if new and new[-1] == eos else new
                answers[i] = self.tokenizer.decode(new, skip_special_tokens=True)
            self.stats.forward_passes += out.shape[1] - width
            if progress:
                progress(min(start + size, len(order)), len(order))
        return answers

    def _budget(self, text: str, source_tokens: int | None = None) -> int:
        if self.options.max_new_tokens is not None:
            return self.options.max_new_tokens
        if source_tokens is None:
            source_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        formulation = self.formulation
        return answer_budget(source_tokens, bool(formulation.schema.relations), formulation.answer_scale)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- constrained: scheduling ------------------------------------------------------------------------
    @torch.inference_mode()
    def _constrained(self, sources: Sequence[Source], progress: Progress | None) -> list[str]:
        items = [_source(s) for s in sources]
        ids = [prompt_ids(self.tokenizer, self.prompts, text) for text, _ in items]
        self._prepare_prefix(ids)
        packing = self._packing_works() and self.options.batch_size > 1
        width = max(1, self.options.batch_size) if packing else 1
        answers: list[str] = [""] * len(items)
        token_ids: list[list[int]] = [[] for _ in items]
        waiting = list(range(len(items)))
        active: list[_Row] = []
        done = 0
        while waiting or active:
            while waiting and len(active) < width:
                i = waiting.pop(0)
                active.append(self._start(i, *items[i], ids[i], packing))
            for row in active:
                size = min(row.k, row.budget - len(row.answer) - 1)
                row.proposal = self._propose(row.grammar, row.state, size) if size > 0 else []
            hidden = self._forward(active, packing)
            for row, h in zip(active, hidden):
                self._verify(row, h)
            for row in [r for r in active if r.finished]:
                active.remove(row)
                answers[row.index], token_ids[row.index] = self._finish(row)
                done += 1
                if progress:
                    progress(done, len(items))
        self.token_ids = token_ids
        return answers

    def _start(self, index: int, text: str, tokens: list[Token], prompt: list[int], packing: bool) -> _Row:
        options = self.options
        source_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        grammar = TagGrammar(text, tokens, self.formulation, options.max_nesting, options.max_relations,
                             bytes_per_token=len(text.encode("utf-8")) / max(1, source_tokens))
        # room kept for the completion to grow by one tag pair (a partial opening tag may still complete)
        margin = 2 + max((len(self._spell(a) or a) + len(self._spell(b) or b)
                          for a, b in zip(grammar.open_tags, grammar.close_tags)), default=0)
        shared = min(_common_length(prompt, self._prefix_ids), len(prompt) - 1)
        if self._prefix_cache is None or shared <= 0:
            shared = 0
        if packing:
            cache = _RowCache.from_cache(self._prefix_cache, shared) if shared else _RowCache([], [])
        elif shared:
            cache = _fork(self._prefix_cache, shared)
        else:
            cache = DynamicCache()
        budget = self._budget(text, source_tokens)
        if options.max_length and options.max_new_tokens is None:
            budget = min(budget, max(options.max_length - len(prompt), source_tokens + 8))
        return _Row(index, text, grammar, grammar.initial(), budget, margin, options.speculate, cache,
                    list(prompt[shared:]))

    def _finish(self, row: _Row) -> tuple[str, list[int]]:
        table = self.table
        answer = row.answer[: row.budget]
        self.stats.answer_tokens += len(answer)
        if answer and answer[-1] == table.eos_id:
            answer = answer[:-1]
        result = b"".join(table.token_bytes[i] or b"" for i in answer).decode("utf-8", errors="replace")
        if self.tokenizer.decode(answer, skip_special_tokens=True) != result:
            self.stats.decode_mismatches += 1
        return result, answer

    # -- constrained: the model -------------------------------------------------------------------------
    def _prepare_prefix(self, ids: list[list[int]]) -> None:
        """Prefill (once) the prompt header that every prompt starts with."""
        probes = [prompt_ids(self.tokenizer, self.prompts, t) for t in ("A", "b")]
        prefix = probes[0]
        for seq in probes[1:] + ids:
            prefix = prefix[: _common_length(prefix, seq)]
        if not prefix:
            self._prefix_ids, self._prefix_cache = [], None
            return
        if self._prefix_cache is not None and self._prefix_ids == prefix:
            return
        cache = DynamicCache()
        self.body(input_ids=torch.tensor([prefix], device=self._device()), past_key_values=cache, use_cache=True)
        self.stats.forward_passes += 1
        self._prefix_ids, self._prefix_cache = prefix, cache

    def _forward(self, rows: list[_Row], packing: bool) -> list[torch.Tensor]:
        """Hidden states at the positions that predict each row's next tokens (last pending + proposal)."""
        self.stats.forward_passes += 1
        device = self._device()
        if not packing:
            out = []
            for row in rows:
                inputs = torch.tensor([row.pending + row.proposal], device=device)
                hidden = self.body(input_ids=inputs, past_key_values=row.cache, use_cache=True).last_hidden_state
                out.append(hidden[0, len(row.pending) - 1 :])
            self.stats.forward_passes += len(rows) - 1
            return out
        ids, positions, segments = [], [], []
        for row in rows:
            new = row.pending + row.proposal
            start = len(row.cache)
            segments.append((len(ids), len(ids) + len(new)))
            ids.extend(new)
            positions.extend(range(start, start + len(new)))
        hidden = self._packed_forward([row.cache for row in rows], segments, ids, positions)
        return [hidden[a + len(row.pending) - 1 : b] for row, (a, b) in zip(rows, segments)]

    def _packed_forward(self, caches: list[_RowCache], segments, ids: list[int], positions: list[int]) -> torch.Tensor:
        device = self._device()
        pack = _Packed(caches, segments)
        config = self.body.config
        masks = {kind: pack for kind in set(getattr(config, "layer_types", None) or ["full_attention"])}
        masks.setdefault("full_attention", pack)
        before = config._attn_implementation
        config._attn_implementation = PACKED_ATTENTION
        try:
            out = self.body(input_ids=torch.tensor([ids], device=device), attention_mask=masks,
                            position_ids=torch.tensor([positions], device=device), past_key_values=pack,
                            use_cache=True)
        finally:
            config._attn_implementation = before
        return out.last_hidden_state[0]

    @torch.inference_mode()
    def _packing_works(self) -> bool:
        """Whether a packed pass gives the model's own hidden states (checked once, on two short sequences)."""
        if self._packing is None:
            self._packing = False
            try:
                _register_packed_attention()
                ids = self.tokenizer("Packed check: one, two; three.", add_special_tokens=False)["input_ids"][:12]
                device = self._device()
                caches, want = [], []
                for cut in (len(ids) // 2, len(ids) // 3):
                    cache = DynamicCache()
                    self.body(input_ids=torch.tensor([ids[:cut]], device=device), past_key_values=cache, use_cache=True)
                    caches.append(_RowCache.from_cache(cache, cut))
                    want.append(self.body(input_ids=torch.tensor([ids[cut:]], device=device),
                                          past_key_values=cache, use_cache=True).last_hidden_state[0])
                segments, a = [], 0
                for w in want:
                    segments.append((a, a + len(w)))
                    a += len(w)
                cuts = (len(ids) // 2, len(ids) // 3)
                got = self._packed_forward(caches, segments, ids[cuts[0]:] + ids[cuts[1]:],
                                           list(range(cuts[0], len(ids))) + list(range(cuts[1], len(ids))))
                scale = max(float(w.abs().max()) for w in want) + 1e-6
                self._packing = all(
                    float((got[s:e] - w).abs().max()) <= 1e-3 * scale for (s, e), w in zip(segments, want)
                )
            except Exception as error:  # noqa: BLE001 - any failure means: do not pack
                log.info("packed decoding unavailable for %s (%s); decoding one input at a time",
                         type(self.body).__name__, error)
            if not self._packing:
                log.info("decoding one input at a time (packed forward passes do not fit this model)")
        return self._packing

    def _choose(self, hidden: torch.Tensor, candidates: list[int]) -> int:
        """The candidate with the highest logit (ties: the lowest id)."""
        if len(candidates) == 1:
            return candidates[0]
        index = torch.tensor(candidates, device=hidden.device)
        if self._head_weight is not None:
            scores = self._head_weight.index_select(0, index) @ hidden
            if self._head_bias is not None:
                scores = scores + self._head_bias.index_select(0, index)
        else:  # a wrapped head (e.g. LoRA on lm_head): full logits, then pick
            scores = self._head(hidden[None])[0].index_select(0, index)
        return candidates[int(torch.argmax(scores))]

    # -- constrained: proposals and verification ---------------------------------------------------------
    def _spell(self, data: bytes) -> list[int] | None:
        """Tokens spelling ``data`` exactly: the tokenizer's own, else longest-match over the vocabulary."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self.table.spell(data)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if b"".join(self.table.token_bytes[i] or b"\0" for i in ids) == data:
            return ids
        return self.table.spell(data)

    def _next_k(self, k: int, proposed: int, accepted: int) -> int:
        """The next proposal length: grows while proposals are taken whole, shrinks after a rejection."""
        top = self.options.speculate
        if accepted == proposed:
            return min(top, 2 * k)
        return max(min(4, top), min(top, 2 * accepted + 2))

    def _propose(self, grammar: TagGrammar, state: tuple, k: int) -> list[int]:
        """Up to ``k`` tokens likely to follow (the copy of the source, or a determined tag/line), all valid."""
        limit = 8 * k + 16
        data = grammar.forced(state, limit)
        if not data:
            return []
        text = data.decode("utf-8", errors="ignore")
        if not text or not data.startswith(text[:1].encode("utf-8")):
            return []  # the cursor is inside a multi-byte character
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(data) >= limit and len(ids) > 1:
            ids = ids[:-1]  # the last token may be cut short by the limit
        proposal = []
        for token in ids[:k]:
            piece = self.table.token_bytes[token]
            if not piece:
                break
            state = grammar.advance(state, piece)
            if not state:
                break
            proposal.append(token)
        return proposal

    def _verify(self, row: _Row, hidden: torch.Tensor) -> None:
        """Take the constrained greedy choice at each position, as long as it agrees with the proposal."""
        table, grammar, proposal = self.table, row.grammar, row.proposal
        accepted = 0
        for j in range(len(proposal) + 1):
            left = row.budget - len(row.answer)
            if not grammar.finishing and left <= grammar.finish_cost(row.state) + row.margin:
                grammar.finishing = True  # no new tags or relation lines from here on
            if left <= grammar.completion_bound(row.state) + row.margin:
                tail = self._spell(grammar.completion(row.state))
                if tail is not None and len(tail) + row.margin >= left:  # the budget is about to run out:
                    row.answer.extend((tail + [table.eos_id])[:left])  # complete the answer without the model
                    row.finished = True
                    break
            candidates = valid_ids(grammar, table, row.state)
            if not candidates:  # cannot happen with a complete vocabulary; stop rather than loop
                log.warning("constrained decoding found no valid token for %r; answer cut short", row.text[:60])
                row.finished = True
                break
            choice = self._choose(hidden[j], candidates)
            row.answer.append(choice)
            if choice == table.eos_id:
                row.finished = True
                break
            row.state = grammar.advance(row.state, table.token_bytes[choice])
            if j < len(proposal) and choice == proposal[j]:
                accepted += 1
                continue
            break
        self.stats.proposed_tokens += len(proposal)
        self.stats.accepted_tokens += accepted
        if proposal:
            row.k = self._next_k(row.k, len(proposal), accepted)
        rejected = len(proposal) - accepted
        if rejected:  # drop the keys and values of the proposal tokens not taken
            row.cache.crop(rejected if isinstance(row.cache, _RowCache) else -rejected)
        row.pending = row.answer[-1:]
        if len(row.answer) >= row.budget:
            row.finished = True


def _fork(cache: DynamicCache, length: int) -> DynamicCache:
    """A cache holding the first ``length`` positions of ``cache``; ``cache`` itself is left untouched
    (cache layers only ever replace their tensors, so the copy can share them)."""
    forked = copy.copy(cache)
    forked.layers = [copy.copy(layer) for layer in cache.layers]
    extra = cache.get_seq_length() - length
    if extra > 0:
        forked.crop(-extra)
    return forked


# ----------------------------------------------------------------------------- convenience


def decode_texts(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: PromptBuilder,
    formulation: Formulation,
    texts: Sequence[Source],
    options: DecodeOptions | None = None,
    progress: Progress | None = None,
    stats: DecodeStats | None = None,
) -> list[str]:
    """The raw answers of ``model`` for ``texts`` (strings, or examples whose tokens give the tag positions).

    Args:
        progress: called as ``progress(done, total)`` after each input (constrained) or batch.
        stats: when given, the run's counters are added to it.
    """
    runner = FaithfulDecoder(model, tokenizer, prompts, formulation, options)
    answers = runner.decode(texts, progress)
    if stats is not None:
        for key, value in runner.stats.to_dict().items():
            setattr(stats, key, getattr(stats, key) + value)
    return answers


def parse_answers(
    formulation: Formulation, sources: Sequence[Source], answers: Sequence[str]
) -> tuple[list[Example], Counter]:
    """Decode answers with the formulation's tolerant decoder: predictions and summed defect counts."""
    predictions, defects = [], Counter()
    for source, answer in zip(sources, answers):
        decoded = formulation.decode(source, answer)
        defects.update(decoded.defects)
        predictions.append(decoded.as_example(source))
    return predictions, defects
