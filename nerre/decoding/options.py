"""How answers are generated (:class:`DecodeOptions`), what a run counted (:class:`DecodeStats`), token budgets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nerre.errors import ConfigError
from nerre.formulation import Formulation

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while answers are generated."""


@dataclass
class DecodeOptions:
    """How answers are generated.

    Args:
        constrained: faithful constrained decoding (formulations with a grammar: tagged); off: plain
            greedy ``generate``.
        batch_size: inputs decoded together: per ``generate`` call in unconstrained mode; in
            constrained mode, inputs whose new tokens share one packed forward pass.
        speculate: most copy tokens proposed per input and forward pass in constrained mode
            (0: step by step); the length adapts to how much of each proposal is taken.
        max_new_tokens: cap on answer tokens, eos included (None: :func:`answer_budget` of the input).
        prompt_lookup: unconstrained mode only: ``prompt_lookup_num_tokens`` for ``generate``
            (prompt-lookup speculation; runs one input at a time).
        max_relations: constrained mode: most relation lines per answer.
        max_nesting: constrained mode: most entity tags open at once.
        signatures: constrained mode: relation arguments must fit their type's signature (the schema's
            ``head``/``tail``, declared or inferred at training); False: any two tagged entities.
        max_sequence_tokens: constrained mode: the length of the sequences (prompt + answer tokens)
            the model was trained on; each answer's budget is capped to what the prompt leaves of
            it (:func:`capped_budget`).
        scores: constrained mode: keep the log-probability of every decision, for the scores of
            :mod:`nerre.decoding.confidence` (a softmax over the allowed candidates only; off: the
            greedy choice alone, as before scores existed).
        temperature: the temperature of the score softmax (the model's logits are divided by it before the
            softmax over the candidates; no choice changes): fitted on dev for calibrated scores
            (``benchmarks/calibration.py``), saved with the adapter as ``score_temperature``.
        entity_bias: constrained mode: added to the log-probability of every candidate that opens an
            entity tag before the greedy choice: above 0 more tags open (recall up), below 0 fewer
            (precision up); 0 (default) leaves decoding exactly as it was. Scores stay the model's own.
        relation_bias: the same for the decision to start another relation line (against ending the answer).
        min_entity_score: predictions keep only the entities whose score (see
            :mod:`nerre.decoding.confidence`) is at least this (0: all); relations lose them too.
        min_relation_score: predictions keep only the relations whose score is at least this (0: all).
    """

    constrained: bool = True
    batch_size: int = 8
    speculate: int = 16
    max_new_tokens: int | None = None
    prompt_lookup: int | None = None
    max_relations: int = 64
    max_nesting: int = 4
    signatures: bool = True
    max_sequence_tokens: int | None = None
    scores: bool = True
    temperature: float = 1.0
    entity_bias: float = 0.0
    relation_bias: float = 0.0
    min_entity_score: float = 0.0
    min_relation_score: float = 0.0


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

    def add(self, other: DecodeStats) -> None:
        """Add the counters of ``other`` to these."""
        for key, value in other.to_dict().items():
            setattr(self, key, getattr(self, key) + value)


def answer_budget(source_tokens: int, has_relations: bool, scale: int = 2) -> int:
    """A generous number of new tokens for the answer to a source of ``source_tokens`` tokens, whose entity
    part takes up to ``scale`` tokens per source token (:attr:`Formulation.answer_scale`)."""
    return scale * source_tokens + 32 + (4 * source_tokens if has_relations else 0)


def capped_budget(budget: int, source_tokens: int, prompt_tokens: int, max_sequence_tokens: int | None) -> int:
    """``budget`` capped to what the prompt leaves of the trained sequence length, though never below
    the source's length plus a few tokens."""
    if not max_sequence_tokens:
        return budget
    return min(budget, max(max_sequence_tokens - prompt_tokens, source_tokens + 8))


def use_constraints(formulation: Formulation, constrained: bool | None) -> bool:
    """Whether to decode with constraints: ``None`` means wherever the formulation has a grammar;
    ``True`` where it has none is an error (the one check, with the one message)."""
    if constrained is None:
        return formulation.constrainable
    if constrained and not formulation.constrainable:
        raise ConfigError(
            f"constrained decoding needs a formulation whose output has a grammar (tagged, bio), not "
            f"{formulation.name!r}; turn it off: `--constrained false` for nerre predict, "
            "`model.init_args.constrained: false` for training, DecodeOptions(constrained=False) in Python"
        )
    return bool(constrained)
