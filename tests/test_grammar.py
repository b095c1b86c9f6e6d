"""The tagged formulation's grammar and parser agree; text in the input stays text; tags never split a character.

No model here: the grammar works on bytes, and on tokens given a tokenizer's byte table.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest
import yaml
from tiny import DEFAULT_TEXTS, tiny_tokenizer

from nerre.decoding import token_table
from nerre.example import Entity, Example, tokenize
from nerre.formulation import JsonRecords, OutsideGrammar, TaggedText
from nerre.formulation.tagged_grammar import Copying, InTag
from nerre.loaders import load_examples, read_jsonl
from nerre.schema import Label, Schema

TESTS = Path(__file__).parent
SCHEMA = Schema(**yaml.safe_load((TESTS / "conf" / "tiny.yaml").read_text())["data"]["schema"])
TAGGED = TaggedText(SCHEMA)
HEADER = "\nRelations:"


def adversarial_inputs(schema: Schema) -> list[str]:
    """Inputs holding every configured tag, label names, HTML, a relation section, combining marks."""
    tags = " ".join(f"<{label.display}>x</{label.display}>" for label in schema.entities)
    names = " ".join(f"<{label.name}>y</{label.name}> </{label.name}>" for label in schema.entities)
    return [
        f"{tags} .",
        f"{names} .",
        "<person>Alice Walker</person> met Bob Jones of <organization>IBM</organization> .",
        "Alice said </PER> and </person> to Bob .",
        '<p class="x">Mail <address>Bob</address> at <a href="mailto:b@c.org">b@c.org</a></p>',
        "<html><body><location>Paris</location><br/></body></html>",
        "ERROR 2024-01-01 <worker-3> job <person> failed: </organization> missing",
        "a\nRelations:\nJohn Smith | works for | Acme",
        "John Smith works for Acme .\nRelations:",
        "Zoe\u0301 Salda\u0301n visited Me\u0301xico with \U0001F469\u200d\U0001F4BB and \U0001F1EB\U0001F1F7 .",
        "x < y > z <<person>> </ person> <person >",
    ]


def accepted(grammar, answer: str):
    state = grammar.advance_bytes(grammar.start(), answer.encode())
    return state if state is not None and grammar.accepting(state) else None


# ----------------------------------------------------------------------------- grammar vs gold


def test_grammar_accepts_exactly_the_gold_targets():
    for example in read_jsonl(TESTS / "data" / "tiny.jsonl"):
        grammar = TAGGED.grammar(example)
        state = accepted(grammar, TAGGED.encode(example))
        assert state and set(grammar.tagged(state)) == set(example.entities), example.id


@pytest.mark.parametrize(
    "answer, ok",
    [
        ("<person>John Smith</person> works for <organization>Acme</organization> .\nRelations:", True),
        ("<person>John Smith</person> works for Acme .\nRelations:\nJohn Smith | works for | Acme", False),  # untagged
        ("<person>John Smith</person> works for <organization>Acme</organization> .\nRelations:"
         "\nJohn Smith | works for | Acme\nJohn Smith | works for | Acme", False),  # a triple twice
        ("<person>John Smith</person> works for <organization>Acme</organization> .\nRelations:"
         "\nJohn Smith | lives in | Acme", True),
        ("<person>John Smith</person> works for <organization>Acme</organization> .\nRelations:"
         "\nJohn Smith | employs | Acme", False),  # unknown relation
        ("<person>Jo</person>hn Smith works for Acme .\nRelations:", False),  # tag inside a token
        ("<people>John</people> Smith works for Acme .\nRelations:", False),  # unknown label
        ("<PER>John</PER> Smith works for Acme .\nRelations:", False),  # a label name is no tag
        ("<person><organization>John</person></organization> Smith works for Acme .\nRelations:", False),  # crossing
        ("<person></person>John Smith works for Acme .\nRelations:", False),  # empty entity
        ("<person>John Smith works for Acme .\nRelations:", False),  # unclosed
        ("John  Smith works for Acme .\nRelations:", False),  # text drift
        ("John Smith works for Acme .", None),  # a valid prefix, not complete
    ],
)
def test_grammar_rejects_every_kind_of_defect(answer, ok):
    grammar = TAGGED.grammar("John Smith works for Acme .")
    state = grammar.advance_bytes(grammar.start(), answer.encode())
    if ok is None:
        assert state is not None and not grammar.accepting(state)
    else:
        assert bool(state is not None and grammar.accepting(state)) is ok


def test_states_have_named_fields():
    grammar = TAGGED.grammar("John Smith works for Acme .")
    (state,) = grammar.advance_bytes(grammar.start(), b"<person>John")
    assert isinstance(state, Copying) and state.cursor == 4 and state.open[0].label == 0 and state.open[0].start == 0
    (state,) = grammar.advance_bytes(grammar.start(), b"<pers")
    assert isinstance(state, InTag) and state.written == b"<pers" and state.cursor == 0


# ----------------------------------------------------------------------------- text is text


def test_a_tag_the_source_holds_is_copied_never_markup():
    text = "<person>Alice Walker</person> met Bob ."
    grammar = TAGGED.grammar(text)
    (state,) = grammar.advance_bytes(grammar.start(), b"<person>")
    assert state == Copying(8, (), ())  # the source's own <person>: no tag is open
    assert accepted(grammar, text + HEADER) and not grammar.tagged(accepted(grammar, text + HEADER))
    # where the source holds a tag string, that string is the source's: the first <person> below is the
    # copy and the second the markup; the first </person> is the copy and the second closes the entity
    answer = "<person><person>Alice Walker</person></person> met <person>Bob</person> .\nRelations:"
    state = accepted(grammar, answer)
    parsed = TAGGED.parse_answer(text, answer)
    assert state and not parsed.defects and set(parsed.entities) == set(grammar.tagged(state))
    assert [text[e.start : e.end] for e in parsed.entities] == ["Alice Walker</person>", "Bob"]


@pytest.mark.parametrize("text", adversarial_inputs(SCHEMA))
def test_a_verbatim_copy_of_tag_like_input_reads_as_no_entities(text):
    for answer, defects in ((text + HEADER, {}), (text, {"missing_relations": 1})):
        parsed = TAGGED.parse_answer(text, answer)
        assert parsed.entities == [] and parsed.relations == [] and parsed.defects == defects, answer
    assert TAGGED.grammar(text).tagged(accepted(TAGGED.grammar(text), text + HEADER)) == []
    ner = TaggedText(Schema(SCHEMA.entities))
    assert ner.parse_answer(text, text).entities == [] and not ner.parse_answer(text, text).defects


@pytest.mark.parametrize("text", adversarial_inputs(SCHEMA))
def test_tagging_tag_like_input_reads_back_exactly(text):
    """Random valid answers (a random walk through the grammar) parse to the entities the grammar tagged."""
    seed = zlib.crc32(text.encode())  # the same in every process (hash() of a str is not), so a failure reproduces
    rng, tagged = random.Random(seed), 0
    for _ in range(20):
        grammar = TAGGED.grammar(text)
        state, answer = grammar.start(), bytearray()
        while True:
            if len(answer) > 3 * len(text.encode()) + 100:
                grammar.finishing = True
            steps = {byte: grammar.step(state, byte) for byte in sorted(grammar.next_bytes(state))}
            steps = {byte: after for byte, after in steps.items() if after is not None}
            assert steps or grammar.accepting(state), "stuck"
            if grammar.accepting(state) and (not steps or rng.random() < 0.05):
                break
            byte = rng.choice(sorted(steps))
            state = steps[byte]
            answer.append(byte)
        output = answer.decode()
        parsed = TAGGED.parse_answer(text, output)
        assert not parsed.defects, f"seed {seed}: {output!r}"
        assert set(parsed.entities) == set(grammar.tagged(state)), f"seed {seed}: {output!r}"
        assert len(parsed.relations) == output.count("\n") - text.count("\n") - 1, f"seed {seed}: {output!r}"
        tagged += len(parsed.entities)
    assert tagged, "no walk tagged an entity: the test checked nothing"


def test_free_generation_reads_tag_like_input_as_text():
    text = "<person>Alice Walker</person> met Bob Jones of <organization>IBM</organization> ."
    # a model that tags Bob Jones and drops a word: the literal tags stay text, the drift is counted
    answer = "<person>Alice Walker</person> met <person>Bob Jones</person> <organization>IBM</organization> ."
    parsed = TaggedText(Schema(SCHEMA.entities)).parse_answer(text, answer)
    assert parsed.entities == [Entity(34, 43, "PER")] and parsed.defects == {"text_drift": 1}
    # a label name in the output is no tag: counted, not read
    parsed = TAGGED.parse_answer("Bob Jones met Acme .", "<PER>Bob Jones</PER> met Acme .\nRelations:")
    assert parsed.entities == [] and parsed.defects == {"unknown_label": 2}


def test_a_line_holding_a_label_name_loses_nothing():
    text = "Bob said </PER> to Acme ."
    answer = "<person>Bob</person> said </PER> to <organization>Acme</organization> .\nRelations:\nBob | works for | Acme"
    parsed = TAGGED.parse_answer(text, answer)
    assert not parsed.defects and [text[e.start : e.end] for e in parsed.entities] == ["Bob", "Acme"]
    assert [r.label for r in parsed.relations] == ["Work_For"]


# ----------------------------------------------------------------------------- whole characters


def test_tokens_keep_combining_marks_and_emoji_sequences_whole():
    text = "Zoe\u0301 Salda\u0301n \U0001F469\u200d\U0001F4BB \U0001F1EB\U0001F1F7 x\u00b2 naïve !"
    assert [text[t.start : t.end] for t in tokenize(text)] == [
        "Zoe\u0301", "Salda\u0301n", "\U0001F469\u200d\U0001F4BB", "\U0001F1EB\U0001F1F7", "x\u00b2", "naïve", "!"]


def test_no_tag_inside_a_character():
    text = "Zoe\u0301 Salda\u0301n visited \U0001F469\u200d\U0001F4BB ."
    grammar = TAGGED.grammar(text)
    for inside in ("<person>Zoe</person>\u0301", "<person>Zoe\u0301 Salda</person>",
                   "<person>Zoe\u0301 Salda\u0301</person>n", "Zoe\u0301 Salda\u0301n visited <person>\U0001F469</person>"):
        assert grammar.advance_bytes(grammar.start(), inside.encode()) is None, inside
    assert accepted(grammar, "<person>Zoe\u0301 Salda\u0301n</person> visited \U0001F469\u200d\U0001F4BB .\nRelations:")


def test_the_parser_counts_a_tag_inside_a_character_and_widens_the_entity():
    text = "Zoe\u0301 Salda\u0301n visited Paris ."
    parsed = TAGGED.parse_answer(text, "<person>Zoe\u0301 Salda</person>\u0301n visited Paris .\nRelations:")
    assert parsed.entities == [Entity(0, 11, "PER")] and parsed.defects == {"split_character": 1}


# ----------------------------------------------------------------------------- a verbatim copy of any input


CORPORA = [("conll2003/test.txt", None), ("conll04/conll04_test.json", "conll04/conll04_types.json"),
           ("ade/ade_full.json", "ade/ade_types.json"), ("scierc/scierc_test.json", "scierc/scierc_types.json")]


@pytest.mark.parametrize("path,types", CORPORA)
def test_a_verbatim_copy_of_any_input_reads_as_no_entities(data_dir, path, types):
    """Over real sentences, the adversarial inputs, and gold targets used as inputs (every tag there is text)."""
    examples = load_examples(data_dir / path)[:1500]
    schema = Schema.from_types_file(data_dir / types) if types else Schema.infer(examples)
    formulation = TaggedText(schema)
    header = HEADER if schema.relations else ""
    sources = examples + [Example(t) for t in adversarial_inputs(schema)]
    sources += [Example(formulation.encode(ex)) for ex in examples[:300]]
    read, defects = formulation.parse(sources, [s.text + header for s in sources])
    assert all(not ex.entities and not ex.relations for ex in read)
    assert all(not found for found in defects)
    for source in sources[:: max(1, len(sources) // 200)]:
        grammar = formulation.grammar(source)
        assert grammar.tagged(accepted(grammar, source.text + header)) == []


# ----------------------------------------------------------------------------- the token level


@pytest.fixture(scope="module")
def table():
    texts = DEFAULT_TEXTS + [TAGGED.encode(ex) for ex in read_jsonl(TESTS / "data" / "tiny.jsonl")]
    return token_table(tiny_tokenizer(texts))


def test_candidates_of_a_gold_answer_hold_each_gold_token(table):
    tokenizer = tiny_tokenizer(DEFAULT_TEXTS + [TAGGED.encode(ex) for ex in read_jsonl(TESTS / "data" / "tiny.jsonl")])
    assert token_table(tokenizer).token_bytes == table.token_bytes
    for example in read_jsonl(TESTS / "data" / "tiny.jsonl"):
        ids = tokenizer(TAGGED.encode(example), add_special_tokens=False)["input_ids"] + [table.eos_id]
        grammar = TAGGED.grammar(example, table)
        allowed = grammar.candidates(ids)
        assert len(allowed) == len(ids) and all(token in options for token, options in zip(ids, allowed))
        assert table.eos_id in allowed[-1] and table.eos_id not in allowed[0]
        # each set is exactly the tokens that keep the answer valid (a scan of the whole vocabulary)
        state = grammar.start()
        for token, options in list(zip(ids, allowed))[:12]:
            scan = [i for i, b in enumerate(table.token_bytes) if b and grammar.advance(state, i) is not None]
            assert options == sorted(scan + ([table.eos_id] if grammar.accepting(state) else []))
            state = grammar.advance(state, token)


@pytest.mark.parametrize("path,types", [("conll2003/train.txt", None),
                                        ("conll04/conll04_train.json", "conll04/conll04_types.json"),
                                        ("scierc/scierc_train.json", "scierc/scierc_types.json")])
def test_candidate_sets_of_real_gold_answers_hold_every_gold_token(data_dir, path, types):
    """The candidate-set loss trains on these sets: on real corpora, with a Gemma-like tokenizer, each gold
    token is in its set. Answers the grammar cannot hold (SciERC: a label nested in itself at one start,
    about 0.5% with Gemma's tokenizer) raise OutsideGrammar, and training falls back for them."""
    from test_decoding import sentencepiece_tokenizer

    examples = load_examples(data_dir / path)[:150]
    schema = Schema.from_types_file(data_dir / types) if types else Schema.infer(examples)
    formulation = TaggedText(schema)
    tokenizer = sentencepiece_tokenizer([formulation.encode(ex) for ex in examples], vocab_size=600)
    table = token_table(tokenizer)
    outside, positions = 0, 0
    for ex in examples:
        ids = tokenizer(formulation.encode(ex), add_special_tokens=False)["input_ids"] + [table.eos_id]
        try:
            allowed = formulation.grammar(ex, table).candidates(ids)
        except OutsideGrammar:
            outside += 1
            continue
        assert all(token in options for token, options in zip(ids, allowed)) and len(allowed) == len(ids)
        positions += len(ids)
    assert outside <= len(examples) // 25 and positions > 20 * len(examples)  # SciERC: 4 of 150 here


def test_an_answer_outside_the_grammar_is_named(table):
    tokenizer = tiny_tokenizer(DEFAULT_TEXTS)
    example = read_jsonl(TESTS / "data" / "tiny.jsonl")[0]
    ids = tokenizer("<person>John Smith</person> works at", add_special_tokens=False)["input_ids"]
    grammar = TAGGED.grammar(example, token_table(tokenizer))
    with pytest.raises(OutsideGrammar) as caught:
        grammar.candidates(ids)
    position = caught.value.position
    assert "<person>John Smith</person> works for".startswith(tokenizer.decode(ids[:position]))
    assert tokenizer.decode(ids[: position + 1]).endswith("at") and len(caught.value.allowed) == position + 1


def test_only_formulations_with_a_grammar_can_be_constrained():
    assert TAGGED.constrainable and TAGGED.grammar("a b") is not None
    assert not JsonRecords(SCHEMA).constrainable and JsonRecords(SCHEMA).grammar("a b") is None
    with pytest.raises(ValueError, match="vocabulary"):
        TAGGED.grammar("a b").allowed(TAGGED.grammar("a b").start())


def test_display_names_that_are_long_or_unusual_still_work():
    schema = Schema([Label("X", "a very long display name " * 4), Label("Y", "ü-ß type")])
    formulation = TaggedText(schema)
    example = Example("Hello world", [Entity(0, 5, "X"), Entity(6, 11, "Y")])
    target = formulation.encode(example)
    assert formulation.roundtrip(example).same_annotations(example)
    assert accepted(formulation.grammar(example), target)
