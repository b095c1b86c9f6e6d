"""The decoder every caller uses: constrained (speculative) or free generation, chosen once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

from nerre.decoding.free import FreeDecoder
from nerre.decoding.options import DecodeOptions, DecodeStats, Progress, use_constraints
from nerre.decoding.speculative import SpeculativeDecoder
from nerre.formulation import Formulation, Source
from nerre.prompt import PromptBuilder


class FaithfulDecoder:
    """Generates answers for a model, a tokenizer, prompts and a formulation.

    Constrained (``options.constrained``, the default where the formulation has a grammar): only
    answers the formulation's grammar allows, by :class:`~nerre.decoding.speculative.SpeculativeDecoder`.
    Unconstrained: greedy ``generate`` (:class:`~nerre.decoding.free.FreeDecoder`), whose defects the
    parser counts.

    Args:
        model: a causal LM (plain or peft-wrapped), in eval mode.
        tokenizer: its tokenizer.
        prompts: builds the prompt of each input.
        formulation: gives the grammar (constrained mode) and the budget.
        options: how to decode.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        prompts: PromptBuilder,
        formulation: Formulation,
        options: DecodeOptions | None = None,
    ):
        self.options = options or DecodeOptions()
        self.stats = DecodeStats()
        self.constrained = use_constraints(formulation, self.options.constrained)
        engine = SpeculativeDecoder if self.constrained else FreeDecoder
        self.engine: SpeculativeDecoder | FreeDecoder = engine(model, tokenizer, prompts, formulation, self.options,
                                                               self.stats)

    def generate(self, sources: Sequence[Source], progress: Progress | None = None) -> list[str]:
        """The generated answers for ``sources`` (texts, or examples whose tokens tell where tags may go)."""
        started = time.perf_counter()
        answers = self.engine.generate(sources, progress)
        self.stats.inputs += len(sources)
        self.stats.seconds += time.perf_counter() - started
        return answers

    @property
    def token_ids(self) -> list[list[int]]:
        """Constrained mode: the answer token ids of the last :meth:`generate` call (eos left out)."""
        return getattr(self.engine, "token_ids", [])

    @property
    def token_logprobs(self) -> list[list[float]]:
        """Constrained mode: per answer of the last :meth:`generate` call, the log-probability of each
        decision among the candidates the grammar allowed (one per token of :attr:`token_ids`, plus the
        end where the model chose it); empty in free generation."""
        return getattr(self.engine, "token_logprobs", [])


def generate_answers(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    prompts: PromptBuilder,
    formulation: Formulation,
    sources: Sequence[Source],
    options: DecodeOptions | None = None,
    progress: Progress | None = None,
    stats: DecodeStats | None = None,
) -> list[str]:
    """The answers of ``model`` for ``sources`` (texts, or examples whose tokens tell where tags may go).

    Args:
        progress: called as ``progress(done, total)`` after each input (constrained) or batch.
        stats: when given, the run's counters are added to it.
    """
    decoder = FaithfulDecoder(model, tokenizer, prompts, formulation, options)
    answers = decoder.generate(sources, progress)
    if stats is not None:
        stats.add(decoder.stats)
    return answers
