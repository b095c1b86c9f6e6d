"""Relation argument signatures: declared in the schema or a types file, or inferred from the training data;
the grammar (so constrained decoding and the candidate-set loss) allows only arguments that fit them."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import TINY_CONFIG, TINY_DATA
from tiny import tiny_tokenizer

from nerre.adapter import AdapterSettings
from nerre.datamodule import ExtractionData
from nerre.decoding import token_table
from nerre.errors import ConfigError, DataError
from nerre.example import Entity, Example, Relation
from nerre.formulation import BioTags, TaggedText
from nerre.loaders import read_jsonl
from nerre.schema import Label, Schema, read_signatures

ENTITIES = [Label("PER", "person"), Label("ORG", "organization"), Label("LOC", "location")]
TEXT = "John Smith works for Acme in Paris ."
JOHN, ACME, PARIS = Entity(0, 10, "PER"), Entity(21, 25, "ORG"), Entity(29, 34, "LOC")
TAGS = "<person>John Smith</person> works for <organization>Acme</organization> in <location>Paris</location> ."


def schema(near: bool = True, **work_for) -> Schema:
    near_label = [Label("Near", "near", symmetric=True, head=("ORG",), tail=("LOC",))] if near else []
    return Schema(ENTITIES, [Label("Work_For", "works for", **work_for)] + near_label)


def accepted(grammar, answer: str) -> bool:
    state = grammar.advance_bytes(grammar.start(), answer.encode())
    return state is not None and grammar.accepting(state)


@pytest.mark.parametrize("signatures", [True, False])
def test_an_argument_against_its_signature_cannot_be_decoded(signatures):
    grammar = TaggedText(schema(False, head=["PER"], tail=["ORG"])).grammar(TEXT, signatures=signatures)
    assert accepted(grammar, TAGS + "\nRelations:\nJohn Smith | works for | Acme")
    assert accepted(grammar, TAGS + "\nRelations:\nAcme | works for | John Smith") is not signatures
    assert accepted(grammar, TAGS + "\nRelations:\nJohn Smith | works for | Paris") is not signatures
    # the grammar never even offers the first byte of a line that cannot fit
    state = grammar.advance_bytes(grammar.start(), (TAGS + "\nRelations:\n").encode())
    heads = grammar.next_bytes(state)
    assert ord("J") in heads and (ord("P") in heads) is not signatures  # no line starts with Paris (a LOC head)
    # without a signature, any pair goes
    free = TaggedText(schema()).grammar(TEXT)
    assert accepted(free, TAGS + "\nRelations:\nParis | works for | Acme")


def test_a_symmetric_relation_fits_in_either_order():
    grammar = TaggedText(schema()).grammar(TEXT)
    assert accepted(grammar, TAGS + "\nRelations:\nAcme | near | Paris")
    assert accepted(grammar, TAGS + "\nRelations:\nParis | near | Acme")  # the signature read the other way round
    assert not accepted(grammar, TAGS + "\nRelations:\nJohn Smith | near | Paris")
    assert Label("Near", symmetric=True, head=("ORG",), tail=("LOC",)).fits("LOC", "ORG")
    assert not Label("In", head=("ORG",), tail=("LOC",)).fits("LOC", "ORG")


def test_the_bio_grammar_keeps_signatures_too():
    example = Example(TEXT, [JOHN, ACME, PARIS])
    fm = BioTags(schema(head=["PER"], tail=["ORG"]))
    lines = "\n".join(f"{w} {t}" for w, t in zip(["John", "Smith", "works", "for", "Acme", "in", "Paris", "."],
                                                    ["B-person", "I-person", "O", "O", "B-organization", "O",
                                                     "B-location", "O"]))
    grammar = fm.grammar(example)
    assert accepted(grammar, lines + "\nRelations:\nJohn Smith | works for | Acme")
    assert not accepted(grammar, lines + "\nRelations:\nAcme | works for | John Smith")
    assert accepted(fm.grammar(example, signatures=False), lines + "\nRelations:\nAcme | works for | John Smith")


def test_the_candidate_sets_follow_the_signature():
    """The candidate-set loss normalises over what the grammar allows: a token that starts an argument which
    cannot fit is not among the candidates at the start of a relation line."""
    tokenizer = tiny_tokenizer()
    table = token_table(tokenizer)
    gold = Example(TEXT, [JOHN, ACME, PARIS], [Relation(JOHN, ACME, "Work_For")])
    sets = {}
    for signed in (True, False):
        fm = TaggedText(schema(False, head=["PER"], tail=["ORG"]) if signed else schema(False))
        answer = tokenizer(fm.encode(gold), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        sets[signed] = fm.grammar(gold, table).candidates(answer)
    assert len(sets[True]) == len(sets[False])
    narrower = [k for k, (a, b) in enumerate(zip(sets[True], sets[False])) if set(a) < set(b)]
    assert narrower and all(set(a) <= set(b) for a, b in zip(sets[True], sets[False]))
    paris = [t for t in set(sets[False][narrower[0]]) - set(sets[True][narrower[0]])]
    assert any(table.token_bytes[t].lstrip().startswith(b"P") or table.token_bytes[t].startswith(b"\nP")
               for t in paris)


def test_signatures_are_inferred_from_examples():
    examples = read_jsonl(TINY_DATA / "tiny.jsonl")
    assert Schema.infer_signatures(examples) == {"Live_In": (("PER",), ("LOC",)), "Work_For": (("PER",), ("ORG",))}
    # the product of the head labels and the tail labels seen with a relation type
    a, b = Entity(0, 1, "ORG"), Entity(2, 3, "LOC")
    more = [Example("x y z w", [a, b, Entity(4, 5, "PER")], [Relation(a, b, "R"), Relation(Entity(4, 5, "PER"), a, "R")])]
    assert Schema.infer_signatures(more) == {"R": (("ORG", "PER"), ("LOC", "ORG"))}
    filled = schema(head=["PER"], tail=["ORG"]).with_signatures({"Work_For": (["ORG"], ["ORG"]), "Near": ((), ())})
    assert filled.signatures["Work_For"] == (("PER",), ("ORG",))  # a declared signature is kept
    assert Schema(ENTITIES, [Label("X")]).with_signatures({"X": (["PER"], ["LOC"])}).fits("X", "PER", "LOC")
    assert not Schema(ENTITIES, [Label("X")]).with_signatures({"X": (["PER"], ["LOC"])}).fits("X", "LOC", "PER")


@pytest.fixture
def data_settings(tiny_model_dir, tmp_path) -> dict:
    settings = yaml.safe_load(TINY_CONFIG.read_text())["data"]
    settings.update(data_dir=str(TINY_DATA), model=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"))
    return settings


def build(settings: dict, **overrides) -> ExtractionData:
    return ExtractionData(**settings | {"schema": Schema(**settings["schema"])} | overrides)


def test_fit_infers_prints_and_saves_the_signatures(data_settings, capsys, caplog):
    data = build(data_settings)
    assert data.schema.signatures == {"Work_For": (("PER",), ("ORG",)), "Live_In": (("PER",), ("LOC",))}
    captured = capsys.readouterr()
    assert "Work_For: head PER, tail ORG" in captured.out + captured.err + caplog.text
    saved = json.loads(AdapterSettings(base_model="x", **data.settings()).to_json())
    assert saved["schema"]["relations"][0]["head"] == ["PER"] and saved["schema"]["relations"][0]["tail"] == ["ORG"]
    formulation, _ = AdapterSettings(**saved).build()  # the adapter round trip: prediction reloads the signature
    assert formulation.schema.signatures == data.schema.signatures
    # an adapter saved before signatures existed loads without any restriction
    for label in saved["schema"]["relations"]:
        del label["head"], label["tail"]
    formulation, _ = AdapterSettings(**saved).build()
    assert formulation.schema.signatures == {} and formulation.schema.fits("Work_For", "LOC", "LOC")
    # inference can be turned off
    assert build(data_settings, infer_signatures=False).schema.signatures == {}


def test_a_declared_signature_the_training_data_breaks_is_a_data_error(data_settings):
    data_settings["schema"]["relations"][0]["head"] = ["ORG"]  # Work_For: the data have PER heads
    with pytest.raises(DataError, match=r"tiny.jsonl: record tiny-0: relation Work_For .*'John Smith' PER -> "
                                        r"'Acme' ORG.* breaks the declared signature of Work_For"):
        build(data_settings)
    data_settings["schema"]["relations"][0]["head"] = ["PER"]
    data_settings["schema"]["relations"][0]["tail"] = ["ORG"]
    data = build(data_settings)
    assert data.schema.signatures["Work_For"] == (("PER",), ("ORG",))
    data_settings["schema"]["relations"][0]["tail"] = ["Company"]
    with pytest.raises(ConfigError, match="names entity label.*'Company'"):
        build(data_settings)


def test_a_types_file_carries_signatures_and_old_ones_stay_valid(tmp_path):
    old = {"entities": {"PER": {"verbose": "person"}, "ORG": {"verbose": "organization"}},
           "relations": {"Work_For": {"short": "Work", "verbose": "works for", "symmetric": False}}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert Schema.from_types_file(tmp_path / "old.json").signatures == {}
    old["relations"]["Work_For"] |= {"head": ["PER"], "tail": ["ORG"]}
    (tmp_path / "new.json").write_text(json.dumps(old))
    loaded = Schema.from_types_file(tmp_path / "new.json")
    assert loaded.signatures == {"Work_For": (("PER",), ("ORG",))}
    assert read_signatures(tmp_path / "new.json") == loaded.signatures
    assert read_signatures(TINY_DATA / "tiny.jsonl")["Live_In"] == (("PER",), ("LOC",))  # a corpus: inferred
    old["relations"]["Work_For"]["head"] = "PER"
    (tmp_path / "bad.json").write_text(json.dumps(old))
    with pytest.raises(DataError, match="'head' must be a list"):
        Schema.from_types_file(tmp_path / "bad.json")


def test_prediction_decodes_with_the_saved_or_given_signatures_or_none(tiny_adapter, tmp_path):
    from nerre.predict import Extractor

    saved = Extractor.load(tiny_adapter, batch_size=1)
    assert saved.formulation.schema.signatures == {"Work_For": (("PER",), ("ORG",)), "Live_In": (("PER",), ("LOC",))}
    assert saved.decoder.options.signatures
    assert not Extractor.load(tiny_adapter, signatures=False).decoder.options.signatures
    types = {"entities": {"PER": {}, "ORG": {}, "LOC": {}},
             "relations": {"Work_For": {"head": ["ORG"], "tail": ["PER"]}, "Live_In": {}}}
    (tmp_path / "types.json").write_text(json.dumps(types))
    given = Extractor.load(tiny_adapter, batch_size=1, signatures_from=tmp_path / "types.json")
    assert given.formulation.schema.signatures == {"Work_For": (("ORG",), ("PER",))}  # replaces the saved ones
    relations = given("John Smith works for Acme .").example.relations
    assert all((r.head.label, r.tail.label) == ("ORG", "PER") for r in relations if r.label == "Work_For")
    assert [(r.head.label, r.tail.label) for r in saved("John Smith works for Acme .").example.relations] == [
        ("PER", "ORG")]


def test_dev_relations_that_break_the_inferred_signatures_are_reported(data_settings, tmp_path, caplog):
    rows = [json.loads(line) for line in (TINY_DATA / "tiny.jsonl").read_text().splitlines()]
    rows[2]["relations"][0] |= {"head": 0, "tail": 1}  # Acme works for Bob Lee: ORG -> PER
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build(data_settings, val=str(tmp_path / "dev.jsonl"))
    assert "dev.jsonl: 1 of 4 gold relations break the relation signatures (Work_For: 1)" in caplog.text
