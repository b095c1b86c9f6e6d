"""nerre.metrics: entity scores equal seqeval's on CoNLL-2003; relation settings, pairing errors."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from nerre.errors import DataError
from nerre.example import Entity, Example, Relation
from nerre.metrics import PRF, Scores, evaluate, pair_examples, score_entities, score_relations

TokenSpan = tuple[int, int, str]  # (first token, end token exclusive, label)
LABELS = ("LOC", "MISC", "ORG", "PER")
AVERAGES = ("micro avg", "macro avg", "weighted avg")


# -- a small local CoNLL-2003 reader (independent of nerre.loaders) ---------------------------
def read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """Words and raw (IOB1) NER tags per sentence; -DOCSTART- skipped, blank lines separate."""
    sentences, tags, words, tag = [], [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("-DOCSTART-"):
            continue
        if not line.strip():
            if words:
                sentences.append(words)
                tags.append(tag)
            words, tag = [], []
            continue
        fields = line.split(" ")
        words.append(fields[0])
        tag.append(fields[-1])
    return sentences, tags


def iob1_spans(tags: list[str]) -> list[TokenSpan]:
    """An entity starts at B-X, or at I-X whose previous tag is not of type X."""
    spans: list[TokenSpan] = []
    start, kind = None, None
    for i, t in enumerate(tags + ["O"]):
        prefix, _, typ = t.partition("-")
        if t == "O" or prefix == "B" or typ != kind:
            if start is not None:
                spans.append((start, i, kind))
            start, kind = (None, None) if t == "O" else (i, typ)
    return spans


def to_iob2(example: Example) -> list[str]:
    """Char spans back to token spans through ``Example.tokens``, then IOB2 tags."""
    starts = {t.start: i for i, t in enumerate(example.tokens)}
    ends = {t.end: i + 1 for i, t in enumerate(example.tokens)}
    tags = ["O"] * len(example.tokens)
    for e in example.entities:
        s, t = starts[e.start], ends[e.end]
        assert all(tag == "O" for tag in tags[s:t]), f"overlapping entities in {example.id}"
        tags[s:t] = [f"B-{e.label}"] + [f"I-{e.label}"] * (t - s - 1)
    return tags


@pytest.fixture(scope="module")
def conll_test(data_dir: Path) -> dict:
    words, raw_tags = read_conll(data_dir / "conll2003" / "test.txt")
    spans = [iob1_spans(t) for t in raw_tags]
    gold = [Example.from_tokens(w, s, id=f"test-{i}") for i, (w, s) in enumerate(zip(words, spans))]
    return {"words": words, "raw_tags": raw_tags, "spans": spans, "gold": gold}


# -- perturbations of token spans (seeded) ---------------------------------------------------
def non_overlapping(spans: list[TokenSpan]) -> list[TokenSpan]:
    """Keep spans greedily from the left so that the result fits in IOB2 tags."""
    kept: list[TokenSpan] = []
    for s, e, label in sorted(spans):
        if not kept or s >= kept[-1][1]:
            kept.append((s, e, label))
    return kept


def drop(rng: random.Random, n: int, spans: list[TokenSpan]) -> list[TokenSpan]:
    return [x for x in spans if rng.random() > 0.15]


def shift(rng: random.Random, n: int, spans: list[TokenSpan]) -> list[TokenSpan]:
    out = []
    for s, e, label in spans:
        if rng.random() < 0.3:
            d = rng.choice((-1, 1))
            if rng.random() < 0.5:
                s = min(max(s + d, 0), e - 1)
            else:
                e = max(min(e + d, n), s + 1)
        out.append((s, e, label))
    return out


def relabel(rng: random.Random, n: int, spans: list[TokenSpan]) -> list[TokenSpan]:
    return [(s, e, rng.choice([x for x in LABELS if x != lab]) if rng.random() < 0.2 else lab) for s, e, lab in spans]


def spurious(rng: random.Random, n: int, spans: list[TokenSpan]) -> list[TokenSpan]:
    out = list(spans)
    if rng.random() < 0.3:
        s = rng.randrange(n)
        out.append((s, min(n, s + rng.randint(1, 3)), rng.choice(LABELS)))
    return out


def merge(rng: random.Random, n: int, spans: list[TokenSpan]) -> list[TokenSpan]:
    out: list[TokenSpan] = []
    for s, e, label in sorted(spans):
        if out and s - out[-1][1] <= 1 and rng.random() < 0.7:
            out[-1] = (out[-1][0], e, out[-1][2])
        else:
            out.append((s, e, label))
    return out


def unknown_label(rng: random.Random, n: int, spans: list[TokenSpan]) -> list[TokenSpan]:
    """MISC is never predicted (precision 0/0); EVENT is never gold (recall 0/0)."""
    return [(s, e, "EVENT" if lab == "MISC" else lab) for s, e, lab in spans]


def nothing(rng: random.Random, n: int, spans: list[TokenSpan]) -> list[TokenSpan]:
    return []


def everything(rng: random.Random, n: int, spans: list[TokenSpan]) -> list[TokenSpan]:
    for f in (drop, shift, relabel, spurious, merge):
        spans = non_overlapping(f(rng, n, spans))
    return spans


PERTURBATIONS: dict[str, Callable] = {
    f.__name__: f for f in (drop, shift, relabel, spurious, merge, unknown_label, nothing, everything)
}


def perturbed(conll: dict, name: str, seed: int = 13) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i, (words, spans) in enumerate(zip(conll["words"], conll["spans"])):
        new = non_overlapping(PERTURBATIONS[name](rng, len(words), list(spans)))
        out.append(Example.from_tokens(words, new, id=f"test-{i}"))
    return out


def assert_equals_seqeval(ours: Scores, gold: list[Example], pred: list[Example], full: bool = False) -> None:
    y_true = [to_iob2(g) for g in gold]
    y_pred = [to_iob2(p) for p in pred]
    for kwargs in ({"mode": "strict", "scheme": IOB2}, {}):  # strict IOB2, and the default (conlleval) mode
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0, **kwargs)
        assert sorted(k for k in report if k not in AVERAGES) == list(ours.per_label), kwargs
        rows = {"micro avg": ours.micro, **ours.per_label}
        for name, prf in rows.items():
            row = report[name]
            assert row["support"] == prf.gold, (kwargs, name)
            assert abs(row["precision"] - prf.precision) < 1e-9, (kwargs, name)
            assert abs(row["recall"] - prf.recall) < 1e-9, (kwargs, name)
            assert abs(row["f1-score"] - prf.f1) < 1e-9, (kwargs, name)
        if full:  # the stand-alone scorers too (slow, so not for every prediction set)
            assert abs(precision_score(y_true, y_pred, zero_division=0, **kwargs) - ours.micro.precision) < 1e-9
            assert abs(recall_score(y_true, y_pred, zero_division=0, **kwargs) - ours.micro.recall) < 1e-9
        assert abs(f1_score(y_true, y_pred, zero_division=0, **kwargs) - ours.micro.f1) < 1e-9


# -- CoNLL-2003 ----------------------------------------------------------------------------------
def test_local_reader_counts_match_source_md(conll_test):
    gold = conll_test["gold"]
    assert len(gold) == 3453
    counts = {lab: sum(e.label == lab for g in gold for e in g.entities) for lab in LABELS}
    assert counts == {"PER": 1617, "LOC": 1668, "ORG": 1661, "MISC": 702}


def test_raw_iob1_loses_entities_in_seqeval_strict_mode(conll_test):
    """Why the tests convert to IOB2: strict IOB2 mode drops most entities of raw IOB1 tags."""
    raw = conll_test["raw_tags"]
    strict = classification_report(raw, raw, output_dict=True, mode="strict", scheme=IOB2, zero_division=0)
    lenient = classification_report(raw, raw, output_dict=True, zero_division=0)
    assert strict["micro avg"]["support"] < 5648
    assert lenient["micro avg"]["support"] == 5648


def test_gold_against_itself_is_perfect(conll_test):
    gold = conll_test["gold"]
    scores = score_entities(gold, gold)
    assert list(scores.per_label) == sorted(LABELS)
    for prf in [scores.micro, *scores.per_label.values()]:
        assert (prf.precision, prf.recall, prf.f1) == (1.0, 1.0, 1.0)
        assert prf.gold == prf.predicted == prf.correct
    assert scores.micro.gold == 5648
    assert_equals_seqeval(scores, gold, gold)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_entity_scores_equal_seqeval_on_conll2003(conll_test, name):
    gold = conll_test["gold"]
    pred = perturbed(conll_test, name)
    scores = score_entities(gold, pred)
    assert scores.micro.predicted == sum(len(p.entities) for p in pred)
    if name == "nothing":
        assert scores.micro == PRF(0.0, 0.0, 0.0, 5648, 0, 0)
    elif name == "unknown_label":
        assert scores.per_label["MISC"].to_dict() == PRF.from_counts(0, 702, 0).to_dict()
        assert scores.per_label["EVENT"].recall == 0.0 and scores.per_label["EVENT"].gold == 0
    else:
        assert 0.3 < scores.micro.f1 < 1.0  # really perturbed, not destroyed
    assert_equals_seqeval(scores, gold, pred, full=name in ("everything", "nothing"))


def test_pairing_by_id_ignores_prediction_order(conll_test):
    gold = conll_test["gold"]
    pred = perturbed(conll_test, "everything")
    shuffled = list(pred)
    random.Random(0).shuffle(shuffled)
    assert score_entities(gold, shuffled) == score_entities(gold, pred)


# -- hand-built entity cases ------------------------------------------------------------------------
WORDS = "John Smith works for Acme Corp in Boston .".split()
GOLD_SPANS = [(0, 2, "PER"), (4, 6, "ORG"), (7, 8, "LOC")]


def test_duplicate_entities_count_once():
    gold = [Example.from_tokens(WORDS, GOLD_SPANS + [(0, 2, "PER")])]
    pred = [Example.from_tokens(WORDS, [(0, 2, "PER"), (0, 2, "PER"), (4, 5, "ORG"), (4, 5, "ORG")])]
    scores = score_entities(gold, pred)
    assert scores.micro.to_dict() == {
        "precision": 0.5, "recall": 1 / 3, "f1": 0.4, "gold": 3, "predicted": 2, "correct": 1,
    }


def test_zero_division_convention():
    empty = [Example.from_tokens(WORDS)]
    some = [Example.from_tokens(WORDS, GOLD_SPANS)]
    assert score_entities(some, empty).micro == PRF(0.0, 0.0, 0.0, 3, 0, 0)
    assert score_entities(empty, some).micro == PRF(0.0, 0.0, 0.0, 0, 3, 0)
    assert score_entities(empty, empty) == Scores(PRF(0.0, 0.0, 0.0, 0, 0, 0), {})


def test_nested_entities_are_scored_as_spans():
    gold = [Example.from_tokens(WORDS, [(4, 8, "ORG"), (7, 8, "LOC")])]
    pred = [Example.from_tokens(WORDS, [(4, 8, "ORG"), (4, 6, "ORG")])]
    scores = score_entities(gold, pred)
    assert (scores.micro.correct, scores.micro.gold, scores.micro.predicted) == (1, 2, 2)
    assert scores.per_label["LOC"].recall == 0.0 and scores.per_label["ORG"].precision == 0.5


# -- relations ------------------------------------------------------------------------------------------
def rel_example(spans, relations, id=None) -> Example:
    return Example.from_tokens(WORDS, spans, relations, id=id)


def test_strict_vs_boundaries():
    gold = [rel_example(GOLD_SPANS, [(0, 1, "Work_For"), (1, 2, "OrgBased_In")])]
    # The head of Work_For carries the wrong entity label; OrgBased_In's tail has the wrong span.
    pred = [rel_example([(0, 2, "ORG"), (4, 6, "ORG"), (6, 8, "LOC")], [(0, 1, "Work_For"), (1, 2, "OrgBased_In")])]
    strict = score_relations(gold, pred, mode="strict")
    boundaries = score_relations(gold, pred, mode="boundaries")
    assert (strict.micro.correct, strict.micro.gold, strict.micro.predicted) == (0, 2, 2)
    assert strict.micro.f1 == 0.0
    assert (boundaries.micro.correct, boundaries.micro.gold, boundaries.micro.predicted) == (1, 2, 2)
    assert boundaries.per_label["Work_For"].f1 == 1.0
    assert boundaries.per_label["OrgBased_In"].f1 == 0.0
    assert score_relations(gold, pred) == strict  # strict is the default
    with pytest.raises(ValueError, match="unknown relation scoring mode 'loose'"):
        score_relations(gold, pred, mode="loose")


PEOPLE = "Alice met Bob and Carol .".split()
PEOPLE_SPANS = [(0, 1, "PER"), (2, 3, "PER"), (4, 5, "PER")]


def people(relations) -> list[Example]:
    return [Example.from_tokens(PEOPLE, PEOPLE_SPANS, relations)]


def test_symmetric_labels_score_in_both_directions_only_when_declared():
    gold = people([(0, 1, "Peer"), (0, 2, "Knows")])
    pred = people([(1, 0, "Peer"), (2, 0, "Knows")])  # both reversed
    for mode in ("strict", "boundaries"):
        assert score_relations(gold, pred, mode).micro.correct == 0
        declared = score_relations(gold, pred, mode, symmetric={"Peer"})
        assert declared.per_label["Peer"].to_dict() == PRF.from_counts(1, 1, 1).to_dict()
        assert declared.per_label["Knows"].to_dict() == PRF.from_counts(0, 1, 1).to_dict()
        assert score_relations(gold, pred, mode, symmetric=("Peer", "Knows")).micro.f1 == 1.0


def test_symmetric_relation_predicted_in_both_directions_counts_once():
    gold = people([(0, 1, "Peer")])
    pred = people([(0, 1, "Peer"), (1, 0, "Peer")])
    assert score_relations(gold, pred, symmetric=["Peer"]).micro == PRF(1.0, 1.0, 1.0, 1, 1, 1)
    directed = score_relations(gold, pred).micro
    assert (directed.correct, directed.gold, directed.predicted) == (1, 1, 2)


def test_duplicate_relations_count_once():
    gold = people([(0, 1, "Peer"), (0, 1, "Peer")])
    pred = people([(0, 1, "Peer"), (0, 1, "Peer"), (0, 1, "Peer"), (1, 2, "Peer")])
    scores = score_relations(gold, pred)
    assert (scores.micro.correct, scores.micro.gold, scores.micro.predicted) == (1, 1, 2)


def test_relation_per_label_figures_across_examples():
    gold = people([(0, 1, "Peer"), (0, 2, "Knows")]) + people([(1, 2, "Knows"), (2, 1, "Knows")])
    pred = people([(0, 1, "Peer"), (0, 2, "Peer")]) + people([(1, 2, "Knows")])
    scores = score_relations(gold, pred)
    assert list(scores.per_label) == ["Knows", "Peer"]
    assert scores.per_label["Knows"].to_dict() == {
        "precision": 1.0, "recall": 1 / 3, "f1": 0.5, "gold": 3, "predicted": 1, "correct": 1,
    }
    assert scores.per_label["Peer"].to_dict() == {
        "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "gold": 1, "predicted": 2, "correct": 1,
    }
    assert scores.micro.to_dict() == {
        "precision": 2 / 3, "recall": 0.5, "f1": 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5),
        "gold": 4, "predicted": 3, "correct": 2,
    }


def test_relation_arguments_are_matched_by_span_not_by_entity_list():
    head, tail = Entity(0, 5, "PER"), Entity(10, 13, "PER")
    gold = [Example("Alice met Bob", [head, tail], [Relation(head, tail, "Peer")])]
    pred = [Example("Alice met Bob", [], [Relation(head, tail, "Peer")])]
    assert score_relations(gold, pred).micro.f1 == 1.0


# -- evaluate -------------------------------------------------------------------------------------------
def test_evaluate_structure_and_empty_relations():
    gold = [Example.from_tokens(WORDS, GOLD_SPANS)]
    result = evaluate(gold, gold)
    assert set(result) == {"entities", "relations"}
    assert result["entities"]["f1"] == 1.0 and set(result["entities"]["per_label"]) == {"LOC", "ORG", "PER"}
    assert set(result["entities"]) == {"precision", "recall", "f1", "gold", "predicted", "correct", "per_label"}
    zeros = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 0, "predicted": 0, "correct": 0, "per_label": {}}
    assert result["relations"] == {"strict": zeros, "boundaries": zeros}


def test_evaluate_passes_symmetric_and_both_modes():
    gold = people([(0, 1, "Peer")])
    pred = [Example.from_tokens(PEOPLE, [(0, 1, "ORG"), (2, 3, "PER"), (4, 5, "PER")], [(1, 0, "Peer")])]
    result = evaluate(gold, pred, symmetric={"Peer"})
    assert result["relations"]["strict"]["f1"] == 0.0
    assert result["relations"]["boundaries"]["f1"] == 1.0
    assert result["relations"]["boundaries"]["per_label"]["Peer"]["correct"] == 1
    assert evaluate(gold, pred)["relations"]["boundaries"]["f1"] == 0.0


# -- pairing ----------------------------------------------------------------------------------------------
def test_pair_examples_length_mismatch():
    gold = [Example("a b"), Example("c d")]
    with pytest.raises(DataError, match=r"^pred.jsonl: cannot pair 2 gold examples \(gold.json\) with 1 predictions"):
        pair_examples(gold, gold[:1], "gold.json", "pred.jsonl")
    with pytest.raises(DataError, match=r"cannot pair 2 gold examples \(gold\) with 1 predictions"):
        score_entities(gold, gold[:1])


def test_pair_examples_text_mismatch_shows_the_first_difference():
    gold = [Example("First sentence.", id="s1"), Example("EU rejects German call to boycott British lamb.", id="s2")]
    pred = [Example("First sentence.", id="s1"), Example("EU rejects German call to boycott British beef.", id="s2")]
    with pytest.raises(DataError) as info:
        evaluate(gold, pred)
    assert str(info.value) == (
        "predictions: the prediction with id 's2' has a different text from its gold example in gold, at character "
        "42: ...' call to boycott British lamb.' vs ...' call to boycott British beef.'; predict from the same file")


def test_pair_examples_text_mismatch_without_ids_names_the_position():
    long = "word " * 40
    gold = [Example("same"), Example(long)]
    pred = [Example("same"), Example(long[:100] + "Word" + long[104:])]
    with pytest.raises(DataError, match=r"the 2nd prediction has a different text from its gold example") as info:
        pair_examples(gold, pred)
    assert ("at character 100: ...'word word word word word word word word word word '... vs "
            "...'word word word word word Word word word word word '...") in str(info.value)


def test_first_difference_of_texts_of_different_length():
    from nerre.metrics import first_difference

    assert first_difference("Paris .", "Paris") == "at character 5 (lengths 7 and 5): 'Paris .' vs 'Paris'"


def test_pair_examples_by_id_and_by_position():
    a, b = Example("a", id="1"), Example("b", id="2")
    assert pair_examples([a, b], [Example("b", id="2"), Example("a", id="1")]) == [
        (a, Example("a", id="1")), (b, Example("b", id="2")),
    ]
    # No ids on the prediction side: by position.
    assert pair_examples([a, b], [Example("a"), Example("b")]) == [(a, Example("a")), (b, Example("b"))]
    # Repeated ids on both sides: by position, and here the texts then disagree.
    with pytest.raises(DataError, match="the 1st prediction has a different text"):
        pair_examples([Example("a", id="x"), Example("b", id="x")], [Example("b", id="x"), Example("a", id="x")])
    # Repeated prediction ids against unique gold ids: refused, naming them.
    with pytest.raises(DataError, match=r"prediction id\(s\) '1' appear more than once, but every gold id in gold"):
        pair_examples([a, b], [Example("a", id="1"), Example("b", id="1")])


def test_pair_examples_id_mismatch():
    gold = [Example("a", id="1"), Example("b", id="2")]
    with pytest.raises(DataError, match=r"ids do not match: 1 gold ids have no prediction \(e.g. \['2'\]\)"):
        pair_examples(gold, [Example("a", id="1"), Example("b", id="3")])
    with pytest.raises(DataError, match=r"the 2nd prediction has id '3' but the 2nd gold example has id '2'"):
        pair_examples(gold, [Example("a"), Example("b", id="3")])


def test_recall_by_novelty_splits_seen_and_unseen_mentions():
    from nerre.metrics import recall_by_novelty

    train = [Example("Paris is big", [Entity(0, 5, "LOC")])]
    gold = [Example("Paris and Lyon", [Entity(0, 5, "LOC"), Entity(10, 14, "LOC")]),
            Example("Lyon again", [Entity(0, 4, "LOC")])]
    pred = [Example("Paris and Lyon", [Entity(0, 5, "LOC")]), Example("Lyon again", [Entity(0, 4, "LOC")])]
    result = recall_by_novelty(gold, pred, train)
    assert result["seen"] == {"recall": 1.0, "gold": 1, "found": 1}
    assert result["unseen"] == {"recall": 0.5, "gold": 2, "found": 1}
