"""Constrained greedy decoding with lossless copy speculation, several inputs per forward pass.

At each step the token chosen is the highest-scoring token among those the formulation's grammar
allows (``argmax`` over :meth:`Grammar.allowed <nerre.formulation.grammar.Grammar.allowed>`,
ties to the lowest id); only the LM-head rows of allowed tokens are ever computed.

Speed comes from the answer being mostly a copy: the next ``speculate`` tokens that the grammar
expects (:meth:`~nerre.formulation.grammar.Grammar.continuation`: the rest of the source, or of a
tag or relation line once it is determined) are proposed and verified in one forward pass over
the KV cache; the proposal is kept up to the first position where the constrained greedy choice
differs, that choice is taken there, and the cache is cropped. The result is the same as
step-by-step constrained greedy decoding (up to floating-point noise between a one-token and a
many-token forward pass). The prompt header, identical across inputs, is prefilled once and its
cache shared by every input; the new tokens of up to ``batch_size`` inputs go through the model
in one packed forward pass (:mod:`nerre.decoding.passes`).

When the token budget runs low the grammar is told to finish (no new markup), and right before it
runs out the grammar's shortest completion is written without the model, so even a cut-short
answer is well formed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from nerre.decoding.options import DecodeOptions, DecodeStats, Progress, answer_budget, capped_budget
from nerre.decoding.passes import Cache, Decision, ModelPasses
from nerre.formulation import Formulation, Grammar, Source, source_text
from nerre.prompt import PromptBuilder, prompt_ids
from nerre.vocabulary import token_table

log = logging.getLogger(__name__)


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass
class _Row:
    """One input being decoded."""

    index: int
    text: str
    grammar: Grammar
    state: Any
    budget: int  #: most answer tokens, eos included
    margin: int  #: tokens kept in reserve for the completion to grow
    bytes_per_token: float  #: of the source, to turn the grammar's remaining bytes into tokens
    k: int  #: the next proposal's length
    cache: Cache
    pending: list[int]  #: tokens fed to the model next, before the proposal
    answer: list[int] = field(default_factory=list)
    #: the decision of each answer token, scored when the answer is done (None: the only candidate)
    decisions: list[Decision | None] = field(default_factory=list)
    proposal: list[int] = field(default_factory=list)
    finished: bool = False


class SpeculativeDecoder:
    """Generates constrained answers (see the module docstring).

    Args:
        model: a causal LM (plain or peft-wrapped), in eval mode.
        tokenizer: its tokenizer.
        prompts: builds the prompt of each input.
        formulation: a formulation with a grammar (:meth:`Formulation.grammar`).
        options: how to decode.
        stats: counters to add to.
    """

    def __init__(self, model: Any, tokenizer: PreTrainedTokenizerBase, prompts: PromptBuilder,
                 formulation: Formulation, options: DecodeOptions, stats: DecodeStats):
        self.tokenizer, self.prompts, self.formulation = tokenizer, prompts, formulation
        self.options, self.stats = options, stats
        self.table = token_table(tokenizer)
        self.passes = ModelPasses(model)
        self._prefix_ids: list[int] = []
        self._prefix_cache: Any = None
        #: the answer token ids of the last :meth:`generate` call (eos left out)
        self.token_ids: list[list[int]] = []
        #: per answer of the last call, the log-probability of each decision among the allowed candidates,
        #: one per token of ``token_ids`` plus the end (eos) where the model chose it
        self.token_logprobs: list[list[float]] = []

    # -- scheduling -----------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, sources: Sequence[Source], progress: Progress | None = None) -> list[str]:
        """The answers for ``sources`` (texts, or examples whose tokens tell where tags may go)."""
        ids = [prompt_ids(self.tokenizer, self.prompts, source_text(s)) for s in sources]
        self.prepare_prefix(ids)
        packing = self.passes.packing_works(self.tokenizer) and self.options.batch_size > 1
        width = max(1, self.options.batch_size) if packing else 1
        answers: list[str] = [""] * len(sources)
        token_ids: list[list[int]] = [[] for _ in sources]
        logprobs: list[list[float]] = [[] for _ in sources]
        waiting = list(range(len(sources)))
        active: list[_Row] = []
        done = 0
        while waiting or active:
            while waiting and len(active) < width:
                i = waiting.pop(0)
                active.append(self._start(i, sources[i], ids[i], packing))
            for row in active:
                size = min(row.k, row.budget - len(row.answer) - 1)
                row.proposal = self._propose(row.grammar, row.state, size) if size > 0 else []
            hidden = self._forward(active, packing)
            for row, h in zip(active, hidden):
                self._verify(row, h)
            for row in [r for r in active if r.finished]:
                active.remove(row)
                answers[row.index], token_ids[row.index] = self._finish(row)
                if row.decisions:
                    logprobs[row.index] = self.passes.log_probs(row.decisions[: row.budget], self.options.temperature)
                done += 1
                if progress:
                    progress(done, len(sources))
        self.token_ids, self.token_logprobs = token_ids, logprobs
        return answers

    def _start(self, index: int, source: Source, prompt: list[int], packing: bool) -> _Row:
        options = self.options
        text = source_text(source)
        source_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        grammar = self.formulation.grammar(source, self.table, max_nesting=options.max_nesting,
                                           max_relations=options.max_relations, signatures=options.signatures)
        # room kept for the completion to grow by one tag pair (a partial opening tag may still complete)
        margin = 2 + max((sum(len(self._spell(piece) or piece) for piece in group) for group in grammar.reserve()),
                         default=0)
        shared = min(_common_length(prompt, self._prefix_ids), len(prompt) - 1)
        if self._prefix_cache is None or shared <= 0:
            shared = 0
        cache = self.passes.new_cache(self._prefix_cache, shared, packing)
        if options.max_new_tokens is not None:
            budget = options.max_new_tokens
        else:
            formulation = self.formulation
            budget = answer_budget(source_tokens, bool(formulation.schema.relations), formulation.answer_scale)
            budget = capped_budget(budget, source_tokens, len(prompt), options.max_sequence_tokens)
        bytes_per_token = max(1.0, len(text.encode("utf-8")) / max(1, source_tokens))
        return _Row(index, text, grammar, grammar.start(), budget, margin, bytes_per_token, options.speculate,
                    cache, list(prompt[shared:]))

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

    # -- the model ------------------------------------------------------------------------------
    def prepare_prefix(self, ids: list[list[int]]) -> None:
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
        self._prefix_cache = self.passes.prefill(prefix)
        self._prefix_ids = prefix
        self.stats.forward_passes += 1

    def _forward(self, rows: list[_Row], packing: bool) -> list[torch.Tensor]:
        """Hidden states at the positions that predict each row's next tokens (last pending + proposal)."""
        self.stats.forward_passes += 1 if packing else len(rows)
        hidden = self.passes.run([row.cache for row in rows], [row.pending + row.proposal for row in rows], packing)
        return [h[len(row.pending) - 1 :] for row, h in zip(rows, hidden)]

    # -- proposals and verification -------------------------------------------------------------
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

    def _propose(self, grammar: Grammar, state: Any, k: int) -> list[int]:
        """Up to ``k`` tokens likely to follow (the grammar's continuation), all allowed."""
        limit = 8 * k + 16
        data = grammar.continuation(state, limit)
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
            state = grammar.advance_bytes(state, piece)
            if state is None:
                break
            proposal.append(token)
        return proposal

    def _bias(self, grammar: Grammar, state: Any, candidates: list[int], device: torch.device) -> torch.Tensor | None:
        """The decoding options' biases on the candidates that open an entity or start a relation line."""
        options = self.options
        opening, lines = grammar.openers(state, candidates, bool(options.entity_bias), bool(options.relation_bias))
        if not opening and not lines:
            return None
        bias = torch.zeros(len(candidates), device=device)
        bias[opening] += options.entity_bias
        bias[lines] += options.relation_bias
        return bias

    @property
    def _biased(self) -> bool:
        return bool(self.options.entity_bias or self.options.relation_bias)

    @staticmethod
    def _finish_tokens(row: _Row) -> int:
        """About how many tokens the way to the end takes (a generous estimate), eos included."""
        return int(1.5 * row.grammar.remaining_bytes(row.state) / row.bytes_per_token) + 4

    def _verify(self, row: _Row, hidden: torch.Tensor) -> None:
        """Take the constrained greedy choice at each position, as long as it agrees with the proposal."""
        table, grammar, proposal = self.table, row.grammar, row.proposal
        biased, scored = self._biased, self.options.scores or self._biased
        accepted = 0
        for j in range(len(proposal) + 1):
            left = row.budget - len(row.answer)
            if not grammar.finishing and left <= self._finish_tokens(row) + row.margin:
                grammar.finishing = True  # no new markup from here on
            if left <= grammar.completion_bound(row.state) + row.margin:
                completion = grammar.completion(row.state)
                tail = self._spell(completion) if completion is not None else None
                if tail is not None and len(tail) + row.margin >= left:  # the budget is about to run out:
                    forced = (tail + [table.eos_id])[:left]
                    row.answer.extend(forced)  # complete the answer without the model
                    if scored:
                        row.decisions.extend([None] * len(forced))
                    row.finished = True
                    break
            candidates = grammar.allowed(row.state)
            if not candidates:  # cannot happen with a complete vocabulary; stop rather than loop
                log.warning("constrained decoding found no allowed token for %r; answer cut short", row.text[:60])
                row.finished = True
                break
            if scored:
                bias = self._bias(grammar, row.state, candidates, hidden.device) if biased else None
                choice, decision = self.passes.choose(hidden[j], candidates, bias)
                row.decisions.append(decision)
            else:
                choice = self.passes.best(hidden[j], candidates)
            row.answer.append(choice)
            if choice == table.eos_id:
                row.finished = True
                break
            row.state = grammar.advance(row.state, choice)
            if j < len(proposal) and choice == proposal[j]:
                accepted += 1
                continue
            break
        self.stats.proposed_tokens += len(proposal)
        self.stats.accepted_tokens += accepted
        if proposal:
            row.k = self._next_k(row.k, len(proposal), accepted)
        self.passes.crop(row.cache, len(proposal) - accepted)  # the proposal tokens not taken
        row.pending = row.answer[-1:]
        if len(row.answer) >= row.budget:
            row.finished = True
