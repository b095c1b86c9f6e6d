"""The error breakdown (`nerre evaluate --breakdown`): each relation and entity error lands in its one category."""

from __future__ import annotations

import json

from nerre.breakdown import breakdown_markdown, error_breakdown
from nerre.cli import run
from nerre.example import Entity, Example, Relation
from nerre.loaders import write_examples

TEXT = "Ann Lee met Bob Ray of Acme and Cid in Rome , Oslo with Eve ."
ANN, BOB, ACME, CID = Entity(0, 7, "PER"), Entity(12, 19, "PER"), Entity(23, 27, "ORG"), Entity(32, 35, "PER")
ROME, OSLO, EVE = Entity(39, 43, "LOC"), Entity(46, 50, "LOC"), Entity(56, 59, "PER")
GOLD = Example(TEXT, [ANN, BOB, ACME, CID, ROME, OSLO, EVE], [
    Relation(ANN, ACME, "Work_For"),   # found
    Relation(BOB, ACME, "Work_For"),   # missed, both entities right, not written
    Relation(CID, ROME, "Live_In"),    # missed, both entities right, written reversed
    Relation(ANN, ROME, "Live_In"),    # missed, both right, written with another label
    Relation(EVE, OSLO, "Live_In"),    # missed, Eve predicted with the wrong type
    Relation(ROME, OSLO, "Near"),      # symmetric: found the other way round
], id="s1")
EVE_ORG = Entity(56, 59, "ORG")  # a type error
AN = Entity(0, 3, "PER")  # a boundary error
PRED = Example(TEXT, [ANN, BOB, ACME, CID, ROME, OSLO, EVE_ORG, AN], [
    Relation(ANN, ACME, "Work_For"),
    Relation(ROME, CID, "Live_In"),     # FP reversed (and against the signature)
    Relation(ANN, ROME, "Work_For"),    # FP wrong label (and against the signature)
    Relation(AN, ACME, "Work_For"),     # FP wrong argument
    Relation(CID, ACME, "Work_For"),    # FP wrong pair
    Relation(OSLO, ROME, "Near"),       # correct: symmetric
], id="s1")
SIGNATURES = {"Work_For": (("PER",), ("ORG",)), "Live_In": (("PER",), ("LOC",)), "Near": (("LOC",), ("LOC",))}


def test_each_relation_error_has_its_category():
    result = error_breakdown([GOLD], [PRED], symmetric={"Near"}, signatures=SIGNATURES, signature_source="test")
    rel = result["relations"]
    assert (rel["gold"], rel["predicted"], rel["correct"]) == (6, 6, 2)
    assert rel["missed"] == {"total": 4, "an_entity_wrong": 1, "both_entities_right": {
        "total": 3, "written_reversed": 1, "written_with_another_label": 1, "not_written": 1}}
    assert rel["recall_given_correct_entities"] == {"gold_with_both_entities_right": 5, "found": 2, "recall": 0.4}
    assert rel["false_positives"] == {"total": 4, "wrong_argument": 1, "reversed": 1, "wrong_label": 1,
                                      "wrong_pair": 1, "against_signature": 2}
    assert rel["per_label"]["Work_For"]["false_positives"]["wrong_argument"] == 1
    assert rel["per_label"]["Near"]["correct"] == 1
    ent = result["entities"]
    assert ent["false_positives"] == {"total": 2, "type": 1, "boundary": 1, "boundary_and_type": 0, "spurious": 0}
    assert ent["false_negatives"] == {"total": 1, "type": 1, "boundary": 0, "boundary_and_type": 0, "missed": 0}
    table = breakdown_markdown(result)
    assert "| wrong pair | 1 | 25.0% |" in table and "2 of the 5 gold relations" in table


def test_without_signatures_they_are_inferred_from_the_gold():
    result = error_breakdown([GOLD], [PRED], symmetric={"Near"})
    assert result["relations"]["signatures"]["source"] == "inferred from the gold"
    assert result["relations"]["signatures"]["signatures"]["Live_In"] == {"head": ["PER"], "tail": ["LOC"]}
    assert result["relations"]["false_positives"]["against_signature"] == 2


def test_evaluate_breakdown_writes_json_and_markdown(tmp_path, capsys):
    write_examples([GOLD], tmp_path / "gold.jsonl", "jsonl")
    write_examples([PRED], tmp_path / "pred.jsonl", "jsonl")
    types = {"entities": {"PER": {}, "ORG": {}, "LOC": {}},
             "relations": {"Work_For": {"head": ["PER"], "tail": ["ORG"]}, "Live_In": {}, "Near": {"symmetric": True}}}
    (tmp_path / "types.json").write_text(json.dumps(types))
    result = run(["evaluate", "--gold", str(tmp_path / "gold.jsonl"), "--pred", str(tmp_path / "pred.jsonl"),
                  "--types_file", str(tmp_path / "types.json"), "--breakdown_dir", str(tmp_path / "out")])
    assert result["relations"]["strict"]["correct"] == 2
    breakdown = result["breakdown"]["relations"]
    assert breakdown["signatures"]["signatures"] == {"Work_For": {"head": ["PER"], "tail": ["ORG"]}}
    assert breakdown["false_positives"]["against_signature"] == 1  # only Work_For declares one: ANN Work_For ROME
    assert json.loads((tmp_path / "out" / "breakdown.json").read_text()) == result["breakdown"]
    assert "Recall given correct entities" in (tmp_path / "out" / "breakdown.md").read_text()
    assert "| reversed | 1 |" in capsys.readouterr().err
