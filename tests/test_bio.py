"""The bio formulation: exact roundtrip on flat corpora, counted losses on nested ones, tolerant decoding."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
import yaml
from test_formulation import CORPORA, JOHN, SCHEMA, example

from nerre.example import Entity, Example, Relation, Token, tokenize
from nerre.formulation import DEFECTS, BioTags, TaggedText, get_formulation
from nerre.formulation.bio import LOSSES
from nerre.loaders import load_examples
from nerre.schema import Label, Schema

FLAT = {"conll2003", "conll04"}


def corpus(data_dir, path, types):
    examples = load_examples(data_dir / path)
    return examples, Schema.from_types_file(data_dir / types) if types else Schema.infer(examples)


def expected_losses(examples: list[Example]) -> Counter:
    """Losses counted independently of the formulation, for corpora whose spans nest but never cross: an
    entity is lost when it overlaps one that starts before it, or at the same place and is longer."""
    lost = Counter()
    for ex in examples:
        entities = set(ex.entities)
        for a in entities:
            for b in entities:
                assert not a.start < b.start < a.end < b.end, f"{ex.id}: crossing spans"
        dropped = {e for e in entities if any(o != e and o.start <= e.start and e.end <= o.end
                                              and (o.start, -o.end, o.label) < (e.start, -e.end, e.label)
                                              for o in entities)}
        lost["overlapping_entity"] += len(dropped)
        lost["orphaned_relation"] += sum(r.head in dropped or r.tail in dropped for r in ex.relations)
    return +lost


@pytest.mark.parametrize("path,types", CORPORA)
def test_roundtrip_reproduces_all_that_the_tags_can_hold(data_dir, path, types):
    examples, schema = corpus(data_dir, path, types)
    bio = BioTags(schema)
    failures, lost = [], Counter()
    for ex in examples:
        kept, left_out = bio.representable(ex)
        lost.update(left_out)
        decoded = bio.parse_answer(ex, bio.encode(ex))
        if decoded.defects or not decoded.as_example(ex).same_annotations(kept):
            failures.append(ex.id)
    assert failures == [] and len(examples) > 0
    if path.split("/")[0] in FLAT:
        assert lost == Counter()  # flat corpora: every entity and relation comes back
    else:
        assert lost == expected_losses(examples) and lost["overlapping_entity"] > 0


def test_answers_list_the_corpus_tokens_with_display_names(data_dir):
    examples, schema = corpus(data_dir, "conll04/conll04_test.json", "conll04/conll04_types.json")
    ex = next(ex for ex in examples if any("." in w and len(w) > 1 for w in ex.words))
    lines = BioTags(schema).encode(ex).split("\nRelations:")[0].split("\n")
    assert [line.split(" ", 1)[0] for line in lines] == ex.words  # e.g. "U.S." stays one token
    assert {line.split(" ", 1)[1] for line in lines} <= {"O"} | {f"{p}-{lab.display}" for p in "BI" for lab in schema.entities}


# -- encoding ---------------------------------------------------------------------------------
def test_target_is_a_token_tag_line_per_token_then_the_tagged_relation_section():
    assert BioTags(SCHEMA).encode(JOHN) == (
        "John B-person\nDoe I-person\njoined O\nAcme B-organization\nin O\nParis B-location\n. O\n"
        "Relations:\nJohn Doe | work for | Acme\nJohn Doe | live in | Paris"
    )
    assert BioTags(SCHEMA).encode(JOHN).split("\nRelations:")[1] == TaggedText(SCHEMA).encode(JOHN).split("\nRelations:")[1]


def test_plain_ner_has_no_relation_section_and_adjacent_entities_get_b_tags():
    ex = example("Acme Globex merged", [("Acme", "ORG"), ("Globex", "ORG")])
    assert BioTags(Schema(SCHEMA.entities)).encode(ex) == "Acme B-organization\nGlobex B-organization\nmerged O"


def test_tokens_that_look_like_tags_and_labels_with_spaces_roundtrip():
    schema = Schema([Label("OST", "Other Scientific Term"), Label("PER", "B-PER")], [Label("R", "rel")])
    ex = Example.from_tokens(["O", "B-PER", "I-OST", "Relations:", "x"], [(0, 2, "OST"), (3, 4, "PER")], [(1, 0, "R")])
    bio = BioTags(schema)
    assert bio.encode(ex).startswith("O B-Other Scientific Term\nB-PER I-Other Scientific Term\nI-OST O\n"
                                     "Relations: B-B-PER\nx O\nRelations:\n")
    decoded = bio.parse_answer(ex, bio.encode(ex))
    assert decoded.defects == {} and decoded.as_example(ex).same_annotations(ex)


def test_raw_text_is_listed_in_nerre_tokens():
    ex = example("Dr. Smith's lab (NYC)", [("Smith", "PER"), ("NYC", "LOC")])
    target = BioTags(Schema(SCHEMA.entities)).encode(ex)
    assert target == "Dr O\n. O\nSmith B-person\n' O\ns O\nlab O\n( O\nNYC B-location\n) O"
    assert BioTags(Schema(SCHEMA.entities)).parse_answer(ex.text, target).entities == ex.entities


def test_nested_entities_keep_the_outermost_and_count_what_is_left_out():
    schema = Schema([Label("AE"), Label("Drug")], [Label("Causes")])
    outer, inner, other = Entity(0, 15, "AE"), Entity(0, 7, "Drug"), Entity(26, 33, "Drug")
    ex = Example("insulin allergy caused by heparin", [inner, outer, other],
                 [Relation(outer, inner, "Causes"), Relation(outer, other, "Causes")])
    bio = BioTags(schema)
    kept, lost = bio.representable(ex)
    assert kept.entities == [outer, other] and kept.relations == [Relation(outer, other, "Causes")]
    assert lost == {"overlapping_entity": 1, "orphaned_relation": 1} and set(lost) <= set(LOSSES)
    assert bio.encode(ex) == ("insulin B-AE\nallergy I-AE\ncaused O\nby O\nheparin B-Drug\n"
                              "Relations:\ninsulin allergy | Causes | heparin")
    assert bio.roundtrip(ex).same_annotations(kept)


def test_entities_off_token_boundaries_are_counted_and_left_out():
    text, entities = "Americans and Acme", [Entity(0, 7, "LOC"), Entity(14, 18, "ORG")]
    ex = Example(text, entities, tokens=tokenize(text))  # the corpus's own tokens: "Americans" stays whole
    kept, lost = BioTags(SCHEMA).representable(ex)
    assert kept.entities == [Entity(14, 18, "ORG")] and lost == {"unaligned_entity": 1}
    # without given tokens, the word is split where the entity ends, so nothing is lost
    kept, lost = BioTags(SCHEMA).representable(Example(text, entities))
    assert kept.entities == entities and not lost


def test_tokens_holding_whitespace_are_refused():
    ex = Example("New York", [Entity(0, 8, "LOC")], tokens=[Token(0, 8)], id="x3")
    with pytest.raises(ValueError, match="x3: token 0 .'New York'. .*whitespace"):
        BioTags(SCHEMA).encode(ex)


def test_new_defect_kinds_are_documented():
    assert {"token_drift", "malformed_tag", "invalid_transition"} <= set(DEFECTS)


# -- tolerant parsing -----------------------------------------------------------------------------
def parse(output: str, source: Example | str = JOHN, schema: Schema = SCHEMA):
    return BioTags(schema).parse_answer(source, output)


def lines(*rows: str, relations: str = "") -> str:
    return "\n".join(rows) + "\nRelations:" + relations


GOLD_ROWS = ("John B-person", "Doe I-person", "joined O", "Acme B-organization", "in O", "Paris B-location", ". O")


def test_decoding_the_gold_target_is_clean():
    d = parse(BioTags(SCHEMA).encode(JOHN))
    assert d.defects == {} and d.as_example(JOHN).same_annotations(JOHN)


def test_invalid_transitions_are_counted_and_read_as_b():
    d = parse(lines("John B-person", "Doe I-location", "joined O", "Acme I-organization", "in O", "Paris B-location",
                     ". O"))
    assert d.defects == {"invalid_transition": 2}  # I-X after B-Y, I-X after O
    assert d.entities == [Entity(0, 4, "PER"), Entity(5, 8, "LOC"), Entity(16, 20, "ORG"), Entity(24, 29, "LOC")]
    d = parse(lines("John I-person", "Doe I-person", *GOLD_ROWS[2:]))  # I-X at the start
    assert d.defects == {"invalid_transition": 1} and Entity(0, 8, "PER") in d.entities


def test_unknown_labels_and_malformed_tags_are_counted_and_read_as_o():
    d = parse(lines("John B-person", "Doe I-person", "joined", "Acme B-company", "in E-location", "Paris X",
                     ". O"))
    assert d.defects == {"malformed_tag": 3, "unknown_label": 1}
    assert d.entities == [Entity(0, 8, "PER")]


def test_label_names_are_read_like_display_names():
    d = parse(lines("John B-PER", "Doe I-person", *GOLD_ROWS[2:]))
    assert d.defects == {} and Entity(0, 8, "PER") in d.entities


def test_drifting_tokens_keep_entities_found_in_the_input_and_count_the_rest():
    d = parse(lines("John B-person", "Doe I-person", "has O", "joined O", "Acme B-organization",
                     "Corp I-organization", "in O", "Paris B-location", "."))
    assert d.defects == {"token_drift": 1, "hallucinated_entity": 1, "malformed_tag": 1}  # "Acme Corp" is not there
    assert d.entities == [Entity(0, 8, "PER"), Entity(24, 29, "LOC")]


def test_tokens_split_differently_from_the_input_still_map_by_their_characters():
    source = Example("He flew to the U.S. today", tokens=[Token(0, 2), Token(3, 7), Token(8, 10), Token(11, 14),
                                                            Token(15, 19), Token(20, 25)])
    d = parse("He O\nflew O\nto O\nthe O\nU B-location\n. I-location\nS I-location\n. I-location\ntoday O",
               source, Schema(SCHEMA.entities))
    assert d.defects == {"token_drift": 1} and d.entities == [Entity(15, 19, "LOC")]


def test_misplaced_entity_is_not_matched_elsewhere():
    d = parse("Paris B-location\nis O\nfar O\n. O", "Rome is far from Paris .", Schema(SCHEMA.entities))
    assert d.entities == [] and d.defects == {"token_drift": 1, "hallucinated_entity": 1}


def test_blank_lines_and_extra_spaces_change_nothing():
    d = parse("\n".join(["John  B-person", "", " Doe\tI-person"] + list(GOLD_ROWS[2:])) + "\nRelations:\n")
    assert d.defects == {} and d.as_example(JOHN).same_annotations(Example(JOHN.text, JOHN.entities))


def test_relation_section_defects_are_those_of_the_tagged_formulation():
    d = parse(lines(*GOLD_ROWS, relations="\nJohn | work for | Acme\nJohn Doe | founded | Acme\nnot a triple\n"
                     "John Doe | live in | Paris\nJohn Doe | work"))
    assert d.defects == {"dangling_argument": 1, "unknown_relation": 1, "malformed_relation": 1,
                         "truncated_relations": 1}
    assert [(r.head.label, r.label, r.tail.label) for r in d.relations] == [("PER", "Live_In", "LOC")]
    d = parse("\n".join(GOLD_ROWS))
    assert d.defects == {"missing_relations": 1} and len(d.entities) == 3


def test_repeated_mentions_are_numbered_in_triples():
    ex = example("Paris met Paris in Paris .", [("Paris", "PER"), ("Paris", "PER"), ("Paris", "LOC")],
                 [(0, 1, "Near"), (1, 2, "Live_In")])
    assert BioTags(SCHEMA).encode(ex).endswith("Relations:\nParis #1 | near | Paris #2\nParis #2 | live in | Paris #3")
    assert BioTags(SCHEMA).roundtrip(ex).same_annotations(ex)


MISSING, DRIFT, MALFORMED, TRUNCATED = "missing_relations", "token_drift", "malformed_tag", "truncated_relations"


@pytest.mark.parametrize(("garbage", "on_john", "on_nothing"), [  # the defects counted for JOHN's text and for ""
    ("", {DRIFT: 1, MISSING: 1}, {MISSING: 1}),
    (" ", {DRIFT: 1, MISSING: 1}, {MISSING: 1}),
    ("\n\n", {DRIFT: 1, MISSING: 1}, {MISSING: 1}),
    ("B-person", {MALFORMED: 1, DRIFT: 1, MISSING: 1}, {MALFORMED: 1, DRIFT: 1, MISSING: 1}),
    ("Relations:", {DRIFT: 1}, {}),  # for no text, an empty relation section is the whole valid answer
    ("John\nRelations:\n | | ", {MALFORMED: 1, DRIFT: 1, TRUNCATED: 1}, {MALFORMED: 1, DRIFT: 1, TRUNCATED: 1}),
    ("x I-\n- B-\n\x00 O", {MALFORMED: 2, DRIFT: 1, MISSING: 1}, {MALFORMED: 2, DRIFT: 1, MISSING: 1}),
    ("Relations:\nRelations:", {DRIFT: 1, TRUNCATED: 1}, {TRUNCATED: 1}),
])
def test_garbage_never_raises_and_is_counted(garbage, on_john, on_nothing):
    for source, defects in ((JOHN, on_john), ("", on_nothing)):
        parsed = BioTags(SCHEMA).parse_answer(source, garbage)
        assert parsed.defects == defects and parsed.entities == [] and parsed.relations == [], repr(source)


# -- the corpus command and training data -------------------------------------------------------
def test_cli_roundtrip_reports_losses_apart_from_failures(data_dir, capsys):
    from test_cli import cli_json

    result = cli_json(["data", "roundtrip", str(data_dir / "scierc/scierc_test.json"), "--formulation", "bio",
                       "--types_file", str(data_dir / "scierc/scierc_types.json")], capsys)
    examples, _ = corpus(data_dir, "scierc/scierc_test.json", None)
    assert result["examples"] == result["exact"] == len(examples) and result["defects"] == {}
    assert result["lost"] == dict(expected_losses(examples)) and result["entities"] == 1685


def test_training_targets_use_the_corpus_tokens_and_losses_are_logged(tiny_model_dir, tmp_path, caplog):
    import json

    from nerre.datamodule import ExtractionData
    from nerre.prompt import PromptSettings

    record = {"tokens": ["U.S.", "insulin", "allergy", "."], "orig_id": "s0",
              "entities": [{"type": "Drug", "start": 1, "end": 2}, {"type": "AE", "start": 1, "end": 3},
                           {"type": "Loc", "start": 0, "end": 1}],
              "relations": [{"type": "Causes", "head": 1, "tail": 0}]}
    (tmp_path / "train.json").write_text(json.dumps([record]))
    with caplog.at_level(logging.WARNING):
        data = ExtractionData(train="train.json", data_dir=str(tmp_path), formulation="bio", model=str(tiny_model_dir),
                              cache_dir=str(tmp_path / "cache"), prompt=PromptSettings(few_shot=1))
    assert "cannot hold every annotation (3 entities, 1 relations); it leaves out orphaned_relation: 1, " \
           "overlapping_entity: 1" in caplog.text
    (row,) = data.tokenized("train")
    answer = data.tokenizer.decode(row["labels"][row["prompt_length"]:], skip_special_tokens=True)
    assert answer == "U.S. B-Loc\ninsulin B-AE\nallergy I-AE\n. O\nRelations:"
    # few-shot turns saved with an adapter keep the corpus tokens too
    (shot,) = data.settings()["shots"]
    assert Example.from_dict(shot).words == ["U.S.", "insulin", "allergy", "."]
    assert get_formulation("bio", data.schema).encode(Example.from_dict(shot)).startswith("U.S. B-Loc\n")


# -- constrained decoding ------------------------------------------------------------------------------
def accepted(grammar, answer: str):
    state = grammar.advance_bytes(grammar.start(), answer.encode())
    return state if state is not None and grammar.accepting(state) else None


@pytest.mark.parametrize("path,types", [c for c in CORPORA if "test" in c[0] or "ade" in c[0]])
def test_grammar_accepts_each_gold_answer_and_tags_what_it_holds(data_dir, path, types):
    examples, schema = corpus(data_dir, path, types)
    bio = BioTags(schema)
    for ex in examples[:800]:
        grammar = bio.grammar(ex)
        state = accepted(grammar, bio.encode(ex))
        assert state is not None, ex.id
        assert grammar.tagged(state) == bio.representable(ex)[0].entities, ex.id
        shortest = grammar.completion(grammar.start())  # every token O, then the header
        assert accepted(grammar, shortest.decode()) and bio.parse_answer(ex, shortest.decode()).entities == []


@pytest.mark.parametrize("answer,ok", [
    ("John B-person\nDoe I-person\njoined O\nAcme B-organization\n. O\nRelations:\nJohn Doe | work for | Acme", True),
    ("John B-person\nDoe B-person\njoined O\nAcme O\n. O\nRelations:", True),  # adjacent entities
    ("John O\nDoe O\njoined O\nAcme O\n. O\nRelations:", True),
    ("John O\nDoe I-person\njoined O\nAcme O\n. O\nRelations:", False),  # I- after O
    ("John B-organization\nDoe I-person\njoined O\nAcme O\n. O\nRelations:", False),  # I- of another type
    ("John B-company\nDoe O\njoined O\nAcme O\n. O\nRelations:", False),  # unknown label
    ("John B-PER\nDoe O\njoined O\nAcme O\n. O\nRelations:", False),  # a label name, not its display name
    ("John O\nDoe O\njoins O\nAcme O\n. O\nRelations:", False),  # a token rephrased
    ("John O\nDoe O\nAcme O\n. O\nRelations:", False),  # a token left out
    ("John O\nDoe O\njoined O\nAcme O\n. O\n! O\nRelations:", False),  # a token added
    ("John O\nDoe O\njoined O\nAcme O\n. O", False),  # no relation section
    ("John O\nDoe O\njoined O\nAcme O\n.  O\nRelations:", False),  # layout
    ("John B-person\nDoe O\njoined O\nAcme O\n. O\nRelations:\nJohn | work for | Acme", False),  # untagged tail
    ("John B-person\nDoe O\njoined O\nAcme B-organization\n. O\nRelations:\nJohn | works for | Acme", False),
])
def test_grammar_allows_only_valid_tags_and_transitions_over_the_input_tokens(answer, ok):
    bio = BioTags(SCHEMA)
    source = Example("John Doe joined Acme .")
    assert (accepted(bio.grammar(source), answer) is not None) is ok
    if ok:
        assert not bio.parse_answer(source, answer).defects


def test_grammar_of_plain_ner_and_of_empty_inputs():
    ner = BioTags(Schema(SCHEMA.entities))
    assert accepted(ner.grammar("Acme ."), "Acme B-organization\n. O")
    assert not accepted(ner.grammar("Acme ."), "Acme B-organization\n. O\nRelations:")
    assert accepted(ner.grammar(""), "") and accepted(BioTags(SCHEMA).grammar(""), "\nRelations:")
    assert ner.constrainable and ner.grammar("Acme .", max_nesting=4) is not None  # the decoder's limits are taken


def test_while_finishing_no_entity_starts():
    grammar = BioTags(SCHEMA).grammar("John Doe joined Acme .")
    state = grammar.advance_bytes(grammar.start(), b"John B-person\nDoe ")
    grammar.finishing = True
    assert grammar.next_bytes(state) >= {ord("O"), ord("I")} and ord("B") not in grammar.next_bytes(state)
    assert grammar.advance_bytes(state, b"I-person\njoined O\nAcme ") is not None
    assert grammar.advance_bytes(state, b"O\njoined B-person") is None
    ending = grammar.completion(state)
    assert grammar.accepting(grammar.advance_bytes(state, ending)) and ending.startswith(b"O\njoined O")


def test_candidates_of_gold_answers_hold_each_gold_token_and_equal_a_vocabulary_scan(data_dir):
    from test_decoding import sentencepiece_tokenizer

    from nerre.decoding import token_table

    examples, schema = corpus(data_dir, "conll04/conll04_dev.json", "conll04/conll04_types.json")
    bio = BioTags(schema)
    examples = examples[:20]
    tokenizer = sentencepiece_tokenizer([bio.encode(ex) for ex in examples], vocab_size=400)
    table = token_table(tokenizer)
    for ex in examples:
        ids = tokenizer(bio.encode(ex), add_special_tokens=False)["input_ids"] + [table.eos_id]
        grammar = bio.grammar(ex, table)
        allowed = grammar.candidates(ids)
        assert all(token in options for token, options in zip(ids, allowed)) and table.eos_id in allowed[-1]
        state = grammar.start()
        for token, options in list(zip(ids, allowed))[:10]:
            scan = [i for i, b in enumerate(table.token_bytes) if b and grammar.advance(state, i) is not None]
            assert options == sorted(scan + ([table.eos_id] if grammar.accepting(state) else []))
            state = grammar.advance(state, token)


@pytest.mark.parametrize("spare", [300, 6])
def test_a_random_model_decodes_only_faithful_bio_answers(spare):
    """Tokens copied in order, valid tags, relations between tagged entities: even from a random model,
    and even when the token budget runs out (the answer is completed with O tags)."""
    from test_decoding import TRICKY
    from tiny import tiny_model, tiny_tokenizer

    from nerre.decoding import DecodeOptions, DecodeStats, generate_answers
    from nerre.prompt import PromptBuilder

    bio = BioTags(SCHEMA)
    texts = ["John Smith works for Acme in New York ."] + TRICKY[:4]
    tokenizer = tiny_tokenizer(texts + [bio.encode(Example(t)) for t in texts])
    model = tiny_model(tokenizer, initializer_range=0.2)
    # the budget: the longest all-O answer and a few tokens to spare (6: the budget runs out on every text)
    shortest = max(len(tokenizer(bio.grammar(t).completion(bio.grammar(t).start()).decode())["input_ids"]) for t in texts)
    stats = DecodeStats()
    answers = generate_answers(model, tokenizer, PromptBuilder(bio), bio, texts,
                               DecodeOptions(max_new_tokens=shortest + spare, max_relations=3, batch_size=2),
                               stats=stats)
    predictions, defects = bio.parse(texts, answers)
    assert all(not found for found in defects), defects
    for text, answer in zip(texts, answers):
        assert accepted(bio.grammar(text), answer), answer
        assert [line.split(" ", 1)[0] for line in answer.split("\nRelations:")[0].split("\n")] == Example(text).words
    if spare == 300:
        assert sum(len(p.entities) for p in predictions) > 0  # the random model does tag things


# -- training and prediction ------------------------------------------------------------------------
def test_fit_trains_and_validates_bio_with_constrained_decoding(tiny_model_dir, tmp_path):
    import csv

    from conftest import fit_args

    from nerre.cli import run
    from nerre.predict import Extractor

    run(fit_args(tiny_model_dir, tmp_path, "--data.formulation", "bio", "--trainer.max_steps", "20",
                 "--trainer.check_val_every_n_epoch", "20", "--trainer.log_every_n_steps", "1",
                 "--trainer.num_sanity_val_steps", "0"))
    (file,) = tmp_path.glob("runs/**/metrics.csv")
    rows = list(csv.DictReader(file.open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    validations = [r for r in rows if r.get("val/entity_f1")]
    assert losses[-1] < 0.75 * losses[0] and len(validations) == 1
    assert float(validations[0]["val/defects"]) == 0  # constrained: well-formed answers only
    (adapter,) = tmp_path.glob("runs/**/adapter")
    extractor = Extractor.load(adapter)
    assert extractor.formulation.name == "bio" and extractor.constrained
    prediction = extractor("John Smith works for Acme .")
    assert prediction.example.text == "John Smith works for Acme ." and not prediction.defects
    assert [line.split(" ")[0] for line in prediction.outputs[0].split("\n")[:6]] == ["John", "Smith", "works", "for",
                                                                                      "Acme", "."]
    free = Extractor.load(adapter, constrained=False)
    assert not free.constrained and free("John Smith works for Acme .").example.text == "John Smith works for Acme ."


@pytest.mark.parametrize("name", ["tagged", "bio"])
@pytest.mark.parametrize("path,types", [("conll2003/dev.txt", None),
                                        ("conll04/conll04_dev.json", "conll04/conll04_types.json")])
def test_the_default_budget_leaves_room_for_the_gold_answers_markup(data_dir, name, path, types):
    """The decoder stops allowing new entities when its estimate of the way to the end nears the budget.
    Walking real gold answers, that must never happen: a bio grammar that counted the longest tag for every
    token left (instead of O) stopped new entities a few tokens into most sentences (recall 9%)."""
    from test_decoding import sentencepiece_tokenizer
    from tiny import tiny_model

    from nerre.decoding import DecodeOptions, DecodeStats
    from nerre.decoding.speculative import SpeculativeDecoder
    from nerre.prompt import PromptBuilder, prompt_ids

    examples, schema = corpus(data_dir, path, types)
    if types is None:  # the shipped config's display names (organization, ...), longer than the label names
        config = yaml.safe_load((Path(__file__).parents[1] / "configs" / "conll2003.yaml").read_text())
        schema = Schema(**config["data"]["schema"])
    examples = examples[:60]
    formulation = get_formulation(name, schema)
    prompts = PromptBuilder(formulation)
    texts = [formulation.encode(ex) for ex in load_examples(data_dir / path)[:400]] + [prompts.prompt("x")]
    tokenizer = sentencepiece_tokenizer(texts, vocab_size=2000)  # about as many bytes per token as Gemma's
    decoder = SpeculativeDecoder(tiny_model(tokenizer), tokenizer, prompts, formulation, DecodeOptions(), DecodeStats())
    for i, ex in enumerate(examples):
        row = decoder._start(i, ex, prompt_ids(tokenizer, prompts, ex.text), packing=False)
        gold = tokenizer(formulation.encode(ex), add_special_tokens=False)["input_ids"]
        for used, token in enumerate(gold):
            left = row.budget - used
            assert left > decoder._finish_tokens(row) + row.margin, (ex.id, used, len(gold), row.budget)
            row.state = row.grammar.advance(row.state, token)
