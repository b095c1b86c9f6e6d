"""The formulations: exact roundtrip on every corpus, tolerant parsing of malformed output."""

from __future__ import annotations

import pytest

from nerre.example import Entity, Example, Relation
from nerre.formulation import JsonRecords, TaggedText, get_formulation
from nerre.loaders import load_examples
from nerre.schema import Label, Schema

SCHEMA = Schema(
    [Label("PER", "person"), Label("ORG", "organization"), Label("LOC", "location")],
    [Label("Work_For", "work for"), Label("Live_In", "live in"), Label("Near", "near", symmetric=True)],
)


def example(text: str, ents: list[tuple[str, str]], rels: list[tuple[int, int, str]] = ()) -> Example:
    """Entities given as (surface, label), found left to right."""
    entities, pos = [], 0
    for surface, label in ents:
        start = text.index(surface, pos)
        entities.append(Entity(start, start + len(surface), label))
        pos = start + len(surface)
    return Example(text, entities, [Relation(entities[h], entities[t], lab) for h, t, lab in rels])


JOHN = example("John Doe joined Acme in Paris .", [("John Doe", "PER"), ("Acme", "ORG"), ("Paris", "LOC")],
               [(0, 1, "Work_For"), (0, 2, "Live_In")])


# -- real corpora -------------------------------------------------------------------------
CORPORA = [
    ("conll2003/train.txt", None), ("conll2003/dev.txt", None), ("conll2003/test.txt", None),
    ("conll04/conll04_train.json", "conll04/conll04_types.json"),
    ("conll04/conll04_dev.json", "conll04/conll04_types.json"),
    ("conll04/conll04_test.json", "conll04/conll04_types.json"),
    ("ade/ade_full.json", "ade/ade_types.json"),
    ("scierc/scierc_train.json", "scierc/scierc_types.json"),
    ("scierc/scierc_dev.json", "scierc/scierc_types.json"),
    ("scierc/scierc_test.json", "scierc/scierc_types.json"),
]


@pytest.mark.parametrize("name", ["tagged", "json"])
@pytest.mark.parametrize("path,types", CORPORA)
def test_roundtrip_is_exact_on_every_corpus(data_dir, path, types, name):
    examples = load_examples(data_dir / path)
    schema = Schema.from_types_file(data_dir / types) if types else Schema.infer(examples)
    formulation = get_formulation(name, schema)
    read, defects = formulation.parse(examples, [formulation.encode(ex) for ex in examples])
    failures = [ex.id for ex, got, found in zip(examples, read, defects) if found or not got.same_annotations(ex)]
    assert failures == [] and len(examples) > 0
    assert [got.id for got in read] == [ex.id for ex in examples] and read[0].tokens == examples[0].tokens


# -- encoding ---------------------------------------------------------------------------------
def test_tagged_target_uses_display_names_and_relation_lines():
    assert TaggedText(SCHEMA).encode(JOHN) == (
        "<person>John Doe</person> joined <organization>Acme</organization> in <location>Paris</location> .\n"
        "Relations:\nJohn Doe | work for | Acme\nJohn Doe | live in | Paris"
    )


def test_plain_ner_has_no_relation_section():
    schema = Schema(SCHEMA.entities)
    assert TaggedText(schema).encode(JOHN.__class__(JOHN.text, JOHN.entities)) == (
        "<person>John Doe</person> joined <organization>Acme</organization> in <location>Paris</location> ."
    )


def test_nested_entities_are_nested_tags_outer_first():
    schema = Schema([Label("AE"), Label("Drug")], [Label("Causes")])
    outer, inner = Entity(0, 15, "AE"), Entity(0, 7, "Drug")
    ex = Example("insulin allergy was seen", [inner, outer], [Relation(outer, inner, "Causes")])
    target = TaggedText(schema).encode(ex)
    assert target.startswith("<AE><Drug>insulin</Drug> allergy</AE> was seen")
    assert TaggedText(schema).roundtrip(ex).same_annotations(ex)


def test_identical_spans_with_two_labels_roundtrip():
    ex = Example("Acme", [Entity(0, 4, "ORG"), Entity(0, 4, "LOC")])
    assert TaggedText(Schema(SCHEMA.entities)).encode(ex) == "<location><organization>Acme</organization></location>"
    assert TaggedText(Schema(SCHEMA.entities)).roundtrip(ex).same_annotations(ex)


def test_same_label_crossing_spans_are_refused():
    ex = Example("a b c", [Entity(0, 3, "PER"), Entity(2, 5, "PER")], id="x7")
    with pytest.raises(ValueError, match="x7.*cross"):
        TaggedText(SCHEMA).encode(ex)


def test_repeated_surface_forms_are_numbered_in_triples():
    ex = example("Paris met Paris in Paris .", [("Paris", "PER"), ("Paris", "PER"), ("Paris", "LOC")],
                 [(0, 1, "Near"), (1, 2, "Live_In")])
    target = TaggedText(SCHEMA).encode(ex)
    assert target.endswith("Relations:\nParis #1 | near | Paris #2\nParis #2 | live in | Paris #3")
    assert TaggedText(SCHEMA).roundtrip(ex).same_annotations(ex)


def test_literal_angle_brackets_and_relation_header_in_the_input_survive():
    ex = example("p < 0.05 for <b> and x > 3\nRelations: Acme", [("x", "PER"), ("Acme", "ORG")], [(0, 1, "Work_For")])
    assert TaggedText(SCHEMA).roundtrip(ex).same_annotations(ex)


def test_unknown_entity_label_in_gold_is_an_error():
    with pytest.raises(KeyError, match="DATE"):
        TaggedText(SCHEMA).encode(Example("today", [Entity(0, 5, "DATE")]))


# -- tolerant parsing ------------------------------------------------------------------------------
def parse(output: str, text: str = JOHN.text, schema: Schema = SCHEMA):
    return TaggedText(schema).parse_answer(text, output)


def test_decoding_the_gold_target_is_clean():
    d = parse(TaggedText(SCHEMA).encode(JOHN))
    assert d.defects == {} and d.as_example(JOHN).same_annotations(JOHN)


def test_unknown_labels_are_dropped_and_counted():
    d = parse("<person>John Doe</person> joined <company>Acme</company> in Paris .\nRelations:")
    assert d.entities == [Entity(0, 8, "PER")]
    assert d.defects["unknown_label"] == 2 and d.defects["text_drift"] == 0


def test_unclosed_unopened_and_crossing_tags():
    d = parse("<person>John Doe joined Acme</location> in Paris .\nRelations:")
    assert d.defects["unclosed_tag"] == 1 and d.defects["unopened_tag"] == 1 and d.entities == []
    d = parse("<person>John <organization>Doe</person> joined</organization> Acme in Paris .\nRelations:")
    assert d.defects["crossing_tags"] == 1
    assert set(d.entities) == {Entity(0, 8, "PER"), Entity(5, 15, "ORG")}


def test_drifting_text_keeps_entities_found_in_the_input_and_counts_the_rest():
    d = parse("<person>John Doe</person> has joined <organization>Acme Corp</organization> in "
               "<location>Paris</location>.\nRelations:")
    assert d.defects["text_drift"] == 1
    assert d.defects["hallucinated_entity"] == 1  # "Acme Corp" is not in the input
    assert set(d.entities) == {Entity(0, 8, "PER"), Entity(24, 29, "LOC")}


def test_misplaced_entity_is_not_matched_elsewhere():
    # the model tags "Paris" where the input has "Rome": never str.find it somewhere else
    d = parse("<location>Paris</location> is far .", text="Rome is far from Paris .", schema=Schema(SCHEMA.entities))
    assert d.entities == [] and d.defects["hallucinated_entity"] == 1


def test_whitespace_inside_tags_is_trimmed_and_empty_tags_counted():
    d = parse("<person> John Doe </person>joined <organization></organization>Acme in Paris .\nRelations:")
    assert Entity(0, 8, "PER") in d.entities and d.defects["empty_entity"] == 1


def test_truncated_and_malformed_relations():
    tagged = TaggedText(SCHEMA).tag(JOHN)
    d = parse(tagged + "\nRelations:\nJohn Doe | work for | Acme\nthis is not a triple\nJohn Doe | live in")
    assert d.defects["malformed_relation"] == 1 and d.defects["truncated_relations"] == 1
    assert [r.label for r in d.relations] == ["Work_For"]


def test_triples_naming_untagged_entities_or_unknown_types():
    tagged = TaggedText(SCHEMA).tag(JOHN)
    d = parse(tagged + "\nRelations:\nJohn | work for | Acme\nJohn Doe | founded | Acme\nJohn Doe | live in | Paris")
    assert d.defects["dangling_argument"] == 1 and d.defects["unknown_relation"] == 1
    assert [(r.head.label, r.label, r.tail.label) for r in d.relations] == [("PER", "Live_In", "LOC")]


def test_missing_relation_section_is_counted():
    d = parse(TaggedText(SCHEMA).tag(JOHN))
    assert d.defects["missing_relations"] == 1 and len(d.entities) == 3


NOT_JSON = {"invalid_json": 1, "missing_relations": 1}


@pytest.mark.parametrize(("garbage", "tagged"), [  # the defects the inline-tag parser counts (JSON: NOT_JSON)
    ("", {"text_drift": 1, "missing_relations": 1}),
    ("<", {"text_drift": 1, "missing_relations": 1}),
    ("</person>", {"text_drift": 1, "unopened_tag": 1, "missing_relations": 1}),
    ("<person>", {"text_drift": 1, "unclosed_tag": 1, "missing_relations": 1}),
    ("\nRelations:\n | | ", {"text_drift": 1, "truncated_relations": 1}),
    ("<<>>", {"text_drift": 1, "missing_relations": 1}),
    ("\x00\n\n|", {"text_drift": 1, "missing_relations": 1}),
])
def test_garbage_never_raises_and_is_counted(garbage, tagged):
    for formulation, defects in ((TaggedText(SCHEMA), tagged), (JsonRecords(SCHEMA), NOT_JSON)):
        parsed = formulation.parse_answer(JOHN.text, garbage)
        assert parsed.defects == defects and parsed.entities == [] and parsed.relations == [], formulation


# -- JSON records ---------------------------------------------------------------------------------
def test_json_target_and_wrong_offsets():
    target = JsonRecords(SCHEMA).encode(JOHN)
    assert '"entity_type": "person", "entity_value": "John Doe", "start_position": 0, "end_position": 8' in target
    output = ('{"entities": [{"entity_type": "location", "entity_value": "Paris", "start_position": 3, '
              '"end_position": 8}, {"entity_type": "person", "entity_value": "Jane", "start_position": 0, '
              '"end_position": 4}], "relations": [{"head": 1, "type": "live in", "tail": 0}]}')
    d = JsonRecords(SCHEMA).parse_answer(JOHN.text, output)
    assert d.entities == [Entity(24, 29, "LOC")]
    assert d.defects["wrong_offsets"] == 1 and d.defects["hallucinated_entity"] == 1
    assert d.defects["dangling_argument"] == 1 and d.relations == []


def test_json_truncated_output_salvages_complete_records():
    output = JsonRecords(SCHEMA).encode(JOHN)[:-60]
    d = JsonRecords(SCHEMA).parse_answer(JOHN.text, output)
    assert d.defects["invalid_json"] == 1 and Entity(0, 8, "PER") in d.entities


def test_unknown_formulation_name():
    with pytest.raises(ValueError, match="choose one of"):
        get_formulation("xml", SCHEMA)
