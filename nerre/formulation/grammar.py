"""What a constrained formulation provides: the answers it accepts for one source, byte by byte and token by token.

A :class:`Grammar` is an automaton over the bytes of an answer, built for one source text by the
formulation that owns it (``formulation.grammar(source, vocabulary)``; ``None`` where the
formulation's output cannot be constrained). Its states are immutable values with named fields,
so they can be read, compared and used as dictionary keys.

With a vocabulary (the byte string of every token id, :class:`nerre.decoding.TokenTable`) the
grammar works on model tokens: :meth:`Grammar.allowed` lists the token ids that keep the answer
valid (the end-of-sequence id where it may end), :meth:`Grammar.advance` takes one, and
:meth:`Grammar.candidates` walks a whole answer (for example a gold answer at tokenization time)
and returns the allowed set at each of its positions. None of this needs a model::

    table = token_table(tokenizer)
    grammar = formulation.grammar(example, table)
    allowed = grammar.candidates(answer_ids)   # answer_ids end with eos; one list per position

The constrained decoder (:mod:`nerre.decoding`) asks the same grammar for the highest-scoring
allowed token at each step, and uses its decoding aids (:meth:`Grammar.continuation`,
:meth:`Grammar.completion`, ...) for speculation and for finishing within a token budget.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nerre.example import Example
    from nerre.formulation.base import Formulation
    from nerre.vocabulary import TokenTable

State = Hashable
"""A grammar state: an immutable, hashable value (the tagged grammar's: a tuple of named configurations)."""


class OutsideGrammar(ValueError):
    """An answer leaves the grammar: ``token_ids[position]`` is not allowed after what precedes it.

    Attributes:
        position: index of the first token that is not allowed.
        token: that token id.
        allowed: the allowed token ids at each position before it (and at ``position`` itself).
    """

    def __init__(self, position: int, token: int, allowed: list[list[int]], shown: str):
        self.position, self.token, self.allowed = position, token, allowed
        super().__init__(f"answer token {position} (id {token}, {shown}) is not allowed by the grammar here; "
                         f"{len(allowed[-1])} tokens are")


class Grammar(ABC):
    """The valid answers to one source, as an automaton over bytes, and over tokens given a vocabulary.

    Subclasses define the byte level (:meth:`start`, :meth:`step`, :meth:`next_bytes`,
    :meth:`accepting`); the token level comes from here. The decoding aids have defaults that
    propose nothing and know no shortcut to the end; a grammar overrides them to make constrained
    decoding fast and to keep answers well formed when the token budget runs out.

    Args:
        vocabulary: the byte string of every token id (needed only for the token level).

    Attributes:
        finishing: set by the decoder when the token budget runs low: from then on the grammar
            allows only what heads for the end (no new markup).
    """

    def __init__(self, vocabulary: TokenTable | None = None):
        self.vocabulary = vocabulary
        self.finishing = False

    # -- the byte level (subclasses) ---------------------------------------------------------------
    @abstractmethod
    def start(self) -> State:
        """The state before the first byte."""

    @abstractmethod
    def step(self, state: State, byte: int) -> State | None:
        """The state after one more byte; None when the byte is not allowed."""

    @abstractmethod
    def next_bytes(self, state: State) -> Iterable[int]:
        """Bytes that may follow (a superset is fine: each is checked with :meth:`step`)."""

    @abstractmethod
    def accepting(self, state: State) -> bool:
        """Whether the answer may end in ``state``."""

    def advance_bytes(self, state: State | None, data: bytes) -> State | None:
        """The state after ``data``; None when it is not allowed."""
        for byte in data:
            if state is None:
                return None
            state = self.step(state, byte)
        return state

    # -- the token level ---------------------------------------------------------------------------
    def _table(self) -> TokenTable:
        if self.vocabulary is None:
            raise ValueError("this grammar has no vocabulary: build it with formulation.grammar(source, token_table(...))")
        return self.vocabulary

    def allowed(self, state: State) -> list[int]:
        """Every token id whose bytes keep the answer valid, plus eos where it may end; sorted.

        Exact: the byte automaton is walked together with the sorted byte strings of the
        vocabulary, so only tokens that can match are ever looked at.
        """
        table = self._table()
        ids: list[int] = []
        todo = [(b"", state)]
        by_bytes, is_prefix, step, next_bytes = table.by_bytes, table.is_prefix, self.step, self.next_bytes
        while todo:
            path, current = todo.pop()
            for byte in next_bytes(current):
                longer = path + bytes((byte,))
                if not is_prefix(longer):
                    continue
                after = step(current, byte)
                if after is None:
                    continue
                hit = by_bytes.get(longer)
                if hit:
                    ids.extend(hit)
                todo.append((longer, after))
        if self.accepting(state):
            ids.append(table.eos_id)
        ids.sort()
        return ids

    def advance(self, state: State, token: int) -> State | None:
        """The state after token id ``token``; None when it is not allowed (eos: ``state`` itself
        where the answer may end)."""
        table = self._table()
        if token == table.eos_id:
            return state if self.accepting(state) else None
        data = table.token_bytes[token] if 0 <= token < len(table.token_bytes) else None
        return self.advance_bytes(state, data) if data else None

    def candidates(self, token_ids: Sequence[int]) -> list[list[int]]:
        """The allowed token ids at each position of an answer (eos included where it has one).

        ``result[k]`` is :meth:`allowed` of the state after ``token_ids[:k]``; ``token_ids[k]`` is
        always in it. Raises :class:`OutsideGrammar` at the first token that is not allowed.
        """
        table = self._table()
        state: State | None = self.start()
        out: list[list[int]] = []
        for position, token in enumerate(token_ids):
            out.append(self.allowed(state))
            after = self.advance(state, token)
            if after is None:
                data = table.token_bytes[token] if 0 <= token < len(table.token_bytes) else None
                raise OutsideGrammar(position, token, out, "eos" if token == table.eos_id else repr(data))
            state = after
            if token == table.eos_id:
                break
        return out

    # -- decoding aids (defaults: no proposal, no shortcut) ----------------------------------------
    def continuation(self, state: State, limit: int) -> bytes:
        """Bytes likely to follow (up to about ``limit``), for the decoder to propose and verify."""
        return b""

    def completion(self, state: State) -> bytes | None:
        """A short valid way from ``state`` to an end; None when the grammar knows none."""
        return None

    def completion_bound(self, state: State) -> int:
        """A cheap upper bound on the bytes of :meth:`completion`."""
        return 0

    def remaining_bytes(self, state: State) -> int:
        """About how many bytes the way to the end takes at most (a generous estimate)."""
        return 0

    def openers(self, state: State, candidates: list[int], entities: bool = True, relations: bool = True
                ) -> tuple[list[int], list[int]]:
        """Which ``candidates`` (token ids allowed in ``state``) commit to opening an entity, and which start
        a relation line: two lists of indices into ``candidates``, for the decoder's biases
        (``DecodeOptions.entity_bias``, ``relation_bias``). ``entities``/``relations`` False: that list is
        left empty (not computed). The default knows neither."""
        return [], []

    def reserve(self) -> list[tuple[bytes, ...]]:
        """Groups of byte strings by which one step can lengthen :meth:`completion` (e.g. a tag pair):
        the decoder keeps room for the longest."""
        return []


def why_outside(grammar: Grammar, answer: str) -> str | None:
    """None when ``grammar`` accepts ``answer`` byte by byte; else where the answer leaves it, and what the
    grammar allows there."""
    data = answer.encode()
    state = grammar.start()
    for i, byte in enumerate(data):
        after = grammar.step(state, byte)
        if after is None:
            allowed = sorted(grammar.next_bytes(state))
            shown = " ".join(repr(chr(b)) if b < 128 else f"0x{b:02x}" for b in allowed[:8])
            before = data[max(0, i - 30) : i].decode("utf-8", "replace")
            rest = data[i : i + 12].decode("utf-8", "replace")
            return (f"byte {i} of the answer: {before!r} + {rest!r}: the grammar allows "
                    f"{shown}{' ...' if len(allowed) > 8 else ''} here")
        state = after
    if not grammar.accepting(state):
        return "the answer ends where the grammar does not allow an end"
    return None


def grammar_coverage(formulation: Formulation, examples: Sequence[Example], shown: int = 5) -> dict:
    """How many gold answers of ``examples`` the formulation's grammar accepts byte by byte, and the first
    ``shown`` that it does not, with why. None of this needs a model."""
    outside = []
    accepted = 0
    for example in examples:
        grammar = formulation.grammar(example)
        if grammar is None:
            return {"formulation": formulation.name, "constrainable": False}
        why = why_outside(grammar, formulation.encode(example))
        if why is None:
            accepted += 1
        elif len(outside) < shown:
            outside.append({"id": example.id, "why": why})
    share = accepted / len(examples) if examples else 1.0
    return {"formulation": formulation.name, "accepted": accepted, "examples": len(examples),
            "share": round(share, 4), "outside": outside}
