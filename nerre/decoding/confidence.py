"""Scores from the constrained decoder's own decisions: a probability on every predicted entity and relation.

At each step the constrained decoder picks one token among the candidates the grammar allows there. The
probability of that decision is the softmax of the model's logits over those candidates only (the logits
already computed for the choice: no extra forward pass, no softmax over the vocabulary); a step with a single
candidate is no decision (probability 1). Then:

* an **entity**'s score is the product of the probabilities of the decisions that wrote it: opening its tag
  here (rather than copying on or opening another), every token copied inside it (rather than closing or
  opening a tag there), and its closing tag (closing here). In log space, the sum over the answer tokens
  from the one that starts its opening tag to the one that ends its closing tag;
* a **relation**'s score is that of the decisions of its line, from the line break that starts it (rather
  than ending the answer) to its last token;
* the **document** score is the probability of the least confident decision of the whole answer (copying,
  tags, relation lines and the end), so a document where the model nearly opened a tag and did not is
  uncertain too. ``nerre predict --rank uncertainty`` sorts by it, lowest first.

Scores are deterministic (greedy decoding, no sampling), and with ``DecodeOptions.entity_bias`` or
``relation_bias`` they stay the model's own probabilities: the bias changes which candidate is taken, not
the probability reported. They live in :attr:`Example.scores <nerre.example.Example.scores>` (a side
mapping keyed by the entity or relation) and :attr:`Example.score <nerre.example.Example.score>`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate

from nerre.example import Entity, Example, Relation
from nerre.formulation import Formulation, Source
from nerre.vocabulary import TokenTable

__all__ = ["attach_scores", "document_score", "keep_confident"]


def document_score(logprobs: Sequence[float]) -> float:
    """The probability of the least confident decision (1.0 when the answer held none)."""
    return math.exp(min(logprobs, default=0.0))


def attach_scores(formulation: Formulation, table: TokenTable, sources: Sequence[Source], answers: Sequence[str],
                  token_ids: Sequence[Sequence[int]], logprobs: Sequence[Sequence[float]],
                  examples: Sequence[Example]) -> None:
    """Set ``scores`` and ``score`` of ``examples`` (the parsed ``answers`` to ``sources``) from the
    decoder's ``token_ids`` and ``logprobs`` (:attr:`FaithfulDecoder.token_logprobs`). Free generation
    and decoding without scores (no log-probabilities) leave them unset."""
    for source, answer, ids, lps, example in zip(sources, answers, token_ids, logprobs, examples):
        if len(lps) < len(ids):  # decoded without scores (DecodeOptions.scores off)
            continue
        example.score = document_score(lps)
        spans = formulation.answer_spans(source, answer, example.entities)
        if spans is None:
            continue
        entity_ranges, relation_ranges = spans
        decisions = _Decisions(table, answer, ids, lps)
        scores: dict[Entity | Relation, float] = {}
        for entity in example.entities:
            if entity in entity_ranges:
                scores[entity] = decisions.score(*entity_ranges[entity])
        for relation, (begin, end) in relation_ranges:
            scores.setdefault(relation, decisions.score(begin, end))
        example.scores = scores


class _Decisions:
    """The decisions of one answer, to score any character range of it."""

    def __init__(self, table: TokenTable, answer: str, ids: Sequence[int], logprobs: Sequence[float]):
        self.ends = list(accumulate(len(table.token_bytes[t] or b"") for t in ids))  # byte end of each token
        self.sums = [0.0, *accumulate(logprobs[: len(ids)])]
        self.bytes = None if answer.isascii() else [0, *accumulate(len(ch.encode("utf-8")) for ch in answer)]

    def score(self, begin: int, end: int) -> float:
        """The probability of the decisions that wrote answer characters ``begin:end``: the product over
        the tokens holding any of their bytes."""
        if self.bytes is not None:
            begin, end = self.bytes[begin], self.bytes[end]
        n = len(self.ends)
        first = bisect_right(self.ends, begin)  # the token holding the first byte
        last = min(bisect_left(self.ends, end), n - 1)  # the token holding the last byte
        return math.exp(self.sums[last + 1] - self.sums[first]) if first < n else 1.0


def keep_confident(example: Example, min_entity: float = 0.0, min_relation: float = 0.0) -> Counter:
    """Drop from ``example`` the entities scoring below ``min_entity`` (and the relations naming them) and the
    relations scoring below ``min_relation``; entities and relations without a score are kept. Returns what
    was dropped, by kind (``entities``, ``relations``, ``relations_with_a_dropped_argument``)."""
    dropped: Counter = Counter()
    if not (min_entity or min_relation):
        return dropped
    scores = example.scores
    kept = [e for e in example.entities if scores.get(e, 1.0) >= min_entity]
    dropped["entities"] = len(example.entities) - len(kept)
    alive = set(kept)
    relations = []
    for r in example.relations:
        if r.head not in alive or r.tail not in alive:
            dropped["relations_with_a_dropped_argument"] += 1
        elif scores.get(r, 1.0) < min_relation:
            dropped["relations"] += 1
        else:
            relations.append(r)
    example.entities, example.relations = kept, relations
    alive.update(relations)
    example.scores = {k: v for k, v in scores.items() if k in alive}
    return +dropped
