"""Micro precision / recall / F1 for entities and relations, matched on character offsets.

Entities are matched span-exactly: ``(example, start, end, label)``. On flat entities this
equals seqeval's strict IOB2 scores (and conlleval's / seqeval's default scores on valid
IOB2 tags); ``tests/test_metrics.py`` checks that on CoNLL-2003.

Relations are scored in the two settings of Taillé et al. (EMNLP 2020), both micro:

* ``strict``: relation label, both argument spans and both argument entity labels;
* ``boundaries``: relation label and both argument spans (entity labels ignored).

Gold and predictions are compared as *sets* per example: a span or triple predicted twice
counts once, and a triple repeated in the gold counts once too.

Zero division follows seqeval's ``zero_division=0``: precision is 0 when nothing is
predicted, recall is 0 when there is no gold, F1 is 0 when precision + recall is 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from nerre.errors import DataError
from nerre.example import Entity, Example, Relation

__all__ = ["PRF", "Scores", "pair_examples", "score_entities", "score_relations", "evaluate", "RELATION_MODES"]

RELATION_MODES = ("strict", "boundaries")


@dataclass
class PRF:
    """Precision, recall and F1 with the counts they come from.

    Attributes:
        precision: ``correct / predicted`` (0 when nothing is predicted).
        recall: ``correct / gold`` (0 when there is no gold).
        f1: harmonic mean of precision and recall (0 when both are 0).
        gold: number of gold items (the support).
        predicted: number of predicted items.
        correct: number of predicted items that are in the gold.
    """

    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    gold: int = 0
    predicted: int = 0
    correct: int = 0

    @classmethod
    def from_counts(cls, correct: int, gold: int, predicted: int) -> PRF:
        """Scores from counts, with seqeval's ``zero_division=0`` convention."""
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        # Same formula as seqeval / scikit-learn, so the floats agree to the last bit.
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, gold, predicted, correct)

    def to_dict(self) -> dict[str, float | int]:
        """``{"precision", "recall", "f1", "gold", "predicted", "correct"}``."""
        return asdict(self)


@dataclass
class Scores:
    """Micro-averaged scores plus one :class:`PRF` per label (labels sorted)."""

    micro: PRF = field(default_factory=PRF)
    per_label: dict[str, PRF] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The micro figures at top level, and ``"per_label": {label: {...}}``."""
        return {**self.micro.to_dict(), "per_label": {k: v.to_dict() for k, v in self.per_label.items()}}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def first_difference(a: str, b: str, context: int = 25) -> str:
    """Where two texts first differ, with a little context: ``at character 17: 'ng to Paris' vs 'ng to Pari s'``."""
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, i - context)

    def excerpt(text: str) -> str:
        piece = text[start : i + context]
        return ("..." if start else "") + repr(piece) + ("..." if i + context < len(text) else "")

    lengths = f" (lengths {len(a)} and {len(b)})" if len(a) != len(b) else ""
    return f"at character {i}{lengths}: {excerpt(a)} vs {excerpt(b)}"


def pair_examples(
    gold: Sequence[Example], pred: Sequence[Example], gold_source: str = "gold", pred_source: str = "predictions"
) -> list[tuple[Example, Example]]:
    """Pair each gold example with its prediction.

    Pairs by ``id`` when every example on both sides has an id, the ids are unique on each
    side, and both sides hold the same ids (the result follows the gold order); otherwise
    pairs by position (a prediction file without ids is read with none).

    Args:
        gold: the gold examples.
        pred: the predictions.
        gold_source: name of the gold side (its file path) for error messages.
        pred_source: name of the predictions' side (its file path) for error messages.

    Raises:
        nerre.errors.DataError: (a ``ValueError``) naming ``pred_source`` when the two lists differ in
            length, when prediction ids repeat, when both sides carry unique ids that do not match (or,
            paired by position, two paired ids differ), or when a gold example and its prediction have
            different ``text`` (showing the first difference).
    """
    gold, pred = list(gold), list(pred)

    def fail(message: str) -> DataError:
        return DataError(pred_source, message)

    if len(gold) != len(pred):
        raise fail(
            f"cannot pair {len(gold)} gold examples ({gold_source}) with {len(pred)} predictions: "
            "the prediction file must hold one record per gold example, in any order when both have ids"
        )
    gold_ids = [g.id for g in gold]
    pred_ids = [p.id for p in pred]

    def unique(ids: list[str | None]) -> bool:
        return None not in ids and len(set(ids)) == len(ids)

    if unique(gold_ids) and None not in pred_ids and not unique(pred_ids):
        repeated = sorted((i for i, n in Counter(pred_ids).items() if n > 1), key=str)
        raise fail(
            f"prediction id(s) {', '.join(repr(i) for i in repeated[:5])} appear more than once, but every gold id "
            f"in {gold_source} is unique; give each prediction the id of its gold example (or no id at all, to pair "
            "by position)"
        )
    by_id = unique(gold_ids) and unique(pred_ids)
    if by_id:
        if set(gold_ids) != set(pred_ids):
            missing = sorted(set(gold_ids) - set(pred_ids), key=str)
            extra = sorted(set(pred_ids) - set(gold_ids), key=str)
            raise fail(
                f"gold and prediction ids do not match: {len(missing)} gold ids have no prediction "
                f"(e.g. {missing[:5]}), {len(extra)} prediction ids are not in the gold {gold_source} (e.g. "
                f"{extra[:5]}); predict from the same file, or drop the ids to pair by position"
            )
        index = {p.id: p for p in pred}
        pairs = [(g, index[g.id]) for g in gold]
    else:
        pairs = list(zip(gold, pred))
        for i, (g, p) in enumerate(pairs):
            if g.id is not None and p.id is not None and g.id != p.id:
                raise fail(
                    f"paired by position, the {_ordinal(i + 1)} prediction has id {p.id!r} but the "
                    f"{_ordinal(i + 1)} gold example has id {g.id!r}; keep the gold order or give every example "
                    "a unique id"
                )
    for i, (g, p) in enumerate(pairs):
        if g.text != p.text:
            which = f"the prediction with id {g.id!r}" if by_id else f"the {_ordinal(i + 1)} prediction"
            raise fail(
                f"{which} has a different text from its gold example in {gold_source}, "
                f"{first_difference(g.text, p.text)}; predict from the same file"
            )
    return pairs


def _score(items: Iterable[tuple[Collection[Hashable], Collection[Hashable]]], label: Callable[[Any], str]) -> Scores:
    """Micro and per-label scores of per-example (gold, predicted) collections, taken as sets."""
    gold_n: Counter[str] = Counter()
    pred_n: Counter[str] = Counter()
    correct_n: Counter[str] = Counter()
    for gold_items, pred_items in items:
        g, p = set(gold_items), set(pred_items)
        gold_n.update(label(x) for x in g)
        pred_n.update(label(x) for x in p)
        correct_n.update(label(x) for x in g & p)
    labels = sorted(set(gold_n) | set(pred_n))
    per_label = {lab: PRF.from_counts(correct_n[lab], gold_n[lab], pred_n[lab]) for lab in labels}
    micro = PRF.from_counts(sum(correct_n.values()), sum(gold_n.values()), sum(pred_n.values()))
    return Scores(micro, per_label)


def _entity_scores(pairs: list[tuple[Example, Example]]) -> Scores:
    return _score(((g.entities, p.entities) for g, p in pairs), label=lambda e: e.label)


def score_entities(gold: Sequence[Example], pred: Sequence[Example]) -> Scores:
    """Span-exact micro P/R/F1 of entities, plus one entry per entity label.

    An entity counts as correct when a gold entity of the paired example has the same
    ``start``, ``end`` and ``label``. Entities are sets per example: duplicates count once.
    Examples are paired with :func:`pair_examples`.
    """
    return _entity_scores(pair_examples(gold, pred))


def _relation_key(relation: Relation, mode: str, symmetric: Collection[str]) -> tuple:
    def arg(e: Entity) -> tuple:
        return (e.start, e.end, e.label) if mode == "strict" else (e.start, e.end)

    head, tail = arg(relation.head), arg(relation.tail)
    if relation.label in symmetric and tail < head:
        head, tail = tail, head
    return (relation.label, head, tail)


def _relation_scores(pairs: list[tuple[Example, Example]], mode: str, symmetric: Collection[str]) -> Scores:
    if mode not in RELATION_MODES:
        raise ValueError(f"unknown relation scoring mode {mode!r}; use one of {RELATION_MODES}")
    symmetric = frozenset(symmetric)
    return _score(
        (
            (
                [_relation_key(r, mode, symmetric) for r in g.relations],
                [_relation_key(r, mode, symmetric) for r in p.relations],
            )
            for g, p in pairs
        ),
        label=lambda key: key[0],
    )


def score_relations(
    gold: Sequence[Example],
    pred: Sequence[Example],
    mode: str = "strict",
    symmetric: Collection[str] = (),
) -> Scores:
    """Micro P/R/F1 of relations, plus one entry per relation label.

    Args:
        gold: the gold examples.
        pred: the predictions, paired with the gold by :func:`pair_examples`.
        mode: ``"strict"`` matches the relation label, both argument spans and both argument
            entity labels; ``"boundaries"`` matches the relation label and both argument
            spans (entity labels are ignored).
        symmetric: relation labels whose argument order does not matter: ``A -r-> B`` and
            ``B -r-> A`` are the same relation (the two arguments are sorted before
            matching). All other labels are directed.

    Relations are sets per example: a relation predicted twice counts once (and, after
    canonicalisation, so do both directions of a symmetric relation). Arguments are
    matched by their spans, whether or not they also appear in the entity list.
    """
    return _relation_scores(pair_examples(gold, pred), mode, symmetric)


def evaluate(gold: Sequence[Example], pred: Sequence[Example], symmetric: Collection[str] = (),
             gold_source: str = "gold", pred_source: str = "predictions") -> dict[str, Any]:
    """All scores as a JSON-ready dict (``gold_source``/``pred_source`` name the sides in errors).

    Returns:
        ``{"entities": {...}, "relations": {"strict": {...}, "boundaries": {...}}}``, each
        entry a :meth:`Scores.to_dict`. The relation entries are present (zeros, no labels)
        when the data has no relations.
    """
    pairs = pair_examples(gold, pred, gold_source, pred_source)
    return {
        "entities": _entity_scores(pairs).to_dict(),
        "relations": {mode: _relation_scores(pairs, mode, symmetric).to_dict() for mode in RELATION_MODES},
    }


def recall_by_novelty(gold: Sequence[Example], pred: Sequence[Example], train: Iterable[Example]) -> dict[str, Any]:
    """Entity recall split by whether the gold mention's text occurs as an entity in ``train`` (seen) or not.

    Generative extractors are suspected of memorising surface forms; this shows how much of the
    recall holds on mentions never seen in training. Matching is span-exact, as in :func:`score_entities`.
    """
    seen_texts = {ex.span_text(e) for ex in train for e in ex.entities}
    counts = {"seen": [0, 0], "unseen": [0, 0]}  # [found, gold]
    for g, p in pair_examples(gold, pred):
        predicted = set(p.entities)
        for e in set(g.entities):
            group = counts["seen" if g.span_text(e) in seen_texts else "unseen"]
            group[1] += 1
            group[0] += e in predicted
    return {
        name: {"recall": found / total if total else 0.0, "gold": total, "found": found}
        for name, (found, total) in counts.items()
    }
