"""Faithful decoding on real annotations in any language: text without spaces (Chinese, Japanese, Thai),
spans with stray white space or ending inside a word, labels nested in themselves, BMES column files."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from conftest import fit_args

from nerre.cli import run, stats
from nerre.errors import ConfigError, DataError
from nerre.example import Entity, Example, Token, tokenize
from nerre.formulation import get_formulation
from nerre.formulation.grammar import grammar_coverage, why_outside
from nerre.loaders import ReaderOptions, ReadNotes, load_examples, read_conll
from nerre.loaders.spans import BLANK, INSIDE, KEPT, TRIMMED
from nerre.schema import Schema

HERE = Path(__file__).parent / "data"
CJK = HERE / "cjk"
SHARED = Path(os.environ.get("NERRE_DATA_DIR", Path(__file__).parents[2] / "shared" / "data"))


def words(text: str) -> list[str]:
    return [text[t.start : t.end] for t in tokenize(text)]


def inside_grammar(examples: list[Example], formulation: str = "tagged") -> dict:
    return grammar_coverage(get_formulation(formulation, Schema.infer(examples)), examples)


# -- text without spaces ------------------------------------------------------------------------------
def test_scripts_without_spaces_have_a_token_per_character():
    assert words("每天8:00出发") == ["每", "天", "8", ":", "00", "出", "发"]
    assert words("東京タワーへ") == ["東", "京", "タ", "ワ", "ー", "へ"]
    assert words("กรุงเทพ") == ["ก", "รุ", "ง", "เ", "ท", "พ"]  # grapheme clusters: the vowel mark stays
    assert words("Hello 世界, café") == ["Hello", "世", "界", ",", "café"]  # other scripts keep their words


def test_real_cjk_annotations_round_trip_and_sit_inside_the_grammar():
    notes = ReadNotes()
    examples = load_examples(CJK / "doccano_zh.jsonl", notes=notes)
    first = examples[0]
    assert [(first.span_text(e), e.label) for e in first.entities] == [
        ("8:00", "时间"), ("北京", "地点"), ("国航CA1234", "航班"), ("上海", "地点")]
    fm = get_formulation("tagged", Schema.infer(examples))
    answer = fm.encode(first)
    assert answer.startswith("每天<时间>8:00</时间>从<地点>北京</地点>出发")
    parsed, defects = fm.parse(examples, [fm.encode(ex) for ex in examples])
    assert all(got.same_annotations(ex) for got, ex in zip(parsed, examples)) and not sum(defects, start=Counter())
    coverage = inside_grammar(examples)
    assert coverage["accepted"] == coverage["examples"] == 4, coverage["outside"]
    assert inside_grammar(examples, "bio")["share"] == 1.0


def test_before_this_change_a_tag_between_two_han_characters_was_refused():
    """The failing example the issue names: ``\\w+`` made ``每天8`` one token, and tags stand between tokens."""
    text = "每天8:00出发"
    ex = Example(text, [Entity(2, 6, "时间")])
    fm = get_formulation("tagged", Schema.infer([ex]))
    assert why_outside(fm.grammar(ex), "每天<时间>8:00</时间>出发") is None
    old_tokens = [Token(0, 3), Token(3, 4), Token(4, 8)]  # 每天8 | : | 00出发
    old = Example(text, [Entity(2, 6, "时间")], tokens=old_tokens)
    assert "byte 6 of the answer" in why_outside(fm.grammar(old), "每天<时间>8:00</时间>出发")


# -- nesting the grammar can hold ------------------------------------------------------------------
def test_nested_gold_answers_are_inside_the_grammar():
    examples = load_examples(CJK / "labelstudio_nested_zh.json", notes=ReadNotes())
    fm = get_formulation("tagged", Schema.infer(examples))
    weapon, genes = examples
    assert fm.encode(weapon).startswith("<武器名称>歼-10<object>战斗机</object></武器名称>是<国家>中国</国家>")
    assert "<Entity><Entity>promoter</Entity> of <Gene>gene</Gene> X</Entity>" in fm.encode(genes)
    coverage = inside_grammar(examples)
    assert coverage["accepted"] == 2, coverage["outside"]


def test_several_tags_close_at_one_position_and_a_label_opens_inside_itself():
    ex = Example("a b c", [Entity(0, 5, "A"), Entity(0, 1, "A"), Entity(4, 5, "B"), Entity(4, 5, "A")])
    fm = get_formulation("tagged", Schema.infer([ex]))
    assert fm.encode(ex) == "<A><A>a</A> b <A><B>c</B></A></A>"
    assert why_outside(fm.grammar(ex), fm.encode(ex)) is None
    assert why_outside(fm.grammar(ex), "<A><A><A><A><A>a") is not None  # still bounded by max_nesting


# -- spans as annotators draw them --------------------------------------------------------------------
def test_stray_white_space_is_trimmed_blank_spans_dropped_and_both_said():
    notes = ReadNotes()
    examples = load_examples(CJK / "doccano_zh.jsonl", notes=notes)
    tweet = examples[3]
    assert [(tweet.span_text(e), e.label) for e in tweet.entities] == [("China", "国家"), ("Air China", "ORG")]
    assert [(tweet.span_text(r.head), tweet.span_text(r.tail)) for r in tweet.relations] == [("Air China", "China")]
    assert notes.counts[TRIMMED] == 2 and notes.counts[BLANK] == 1 and notes.first[TRIMMED] == "4"
    summary = stats(str(CJK / "doccano_zh.jsonl"))["converted"]
    assert any(line.startswith("2 spans with white space at an end trimmed") for line in summary)


def test_trim_spans_false_keeps_spans_as_drawn_and_says_the_grammar_cannot_write_them():
    notes = ReadNotes()
    examples = load_examples(CJK / "doccano_zh.jsonl", options=ReaderOptions(trim_spans=False), notes=notes)
    assert examples[3].span_text(examples[3].entities[0]) == "China " and notes.counts[KEPT] == 2
    assert INSIDE not in notes.counts  # a span ending in white space does not end inside a word
    coverage = inside_grammar(examples)
    assert coverage["accepted"] == 3 and coverage["outside"][0]["id"] == "4"
    assert "the grammar allows" in coverage["outside"][0]["why"]


def test_a_span_ending_inside_a_word_is_kept_counted_and_writable():
    notes = ReadNotes()
    examples = load_examples(CJK / "labelstudio_nested_zh.json", notes=notes)
    linux = examples[1]
    assert ("Linux Foundatio", "ORG") in [(linux.span_text(e), e.label) for e in linux.entities]
    assert ("n", "X") in [(linux.span_text(e), e.label) for e in linux.entities]
    assert notes.counts[INSIDE] == 2
    assert "Foundatio" in linux.words and "n" in linux.words  # the word's token is split, nothing moved


def test_trim_spans_is_refused_by_token_formats():
    with pytest.raises(ConfigError, match="trim_spans"):
        load_examples(HERE / "formats" / "doccano.jsonl", "conll", ReaderOptions(trim_spans=True))


# -- BMES column files ------------------------------------------------------------------------------
BMES = "张 B-NAME\n三 E-NAME\n任 O\n华 B-ORG\n为 M-ORG\n公 M-ORG\n司 E-ORG\n董 B-TITLE\n事 E-TITLE\n。 O\n\n王 S-NAME\n先 O\n生 O\n\n"


def test_bmes_character_files_read_as_text_without_spaces(tmp_path):
    path = tmp_path / "tiny.char.bmes"
    path.write_text(BMES, encoding="utf-8")
    notes = ReadNotes()
    first, second = load_examples(path, notes=notes)
    assert first.text == "张三任华为公司董事。" and second.text == "王先生"
    assert [(first.span_text(e), e.label) for e in first.entities] == [
        ("张三", "NAME"), ("华为公司", "ORG"), ("董事", "TITLE")]
    assert "tokens joined without spaces" in notes.decisions[0]
    spaced = read_conll(path, join="space")
    assert spaced[0].text.startswith("张 三 任")


def test_unknown_join_and_tag_errors_values_say_the_choices(tmp_path):
    path = tmp_path / "tiny.char.bmes"
    path.write_text(BMES, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"join='spaces': choose space, none or auto"):
        read_conll(path, join="spaces")
    with pytest.raises(ConfigError, match=r"tag_errors='skip': choose raise or drop"):
        read_conll(path, tag_errors="skip")


def test_a_broken_bmes_entity_names_its_line_and_drop_counts_it(tmp_path):
    path = tmp_path / "broken.char.bmes"
    path.write_text("圣 B-ORG\n。 M-ORG\n\n彼 M-ORG\n得 E-ORG\n堡 O\n\n李 S-NAME\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.char.bmes:2: .*tag_errors=drop"):
        read_conll(path)
    notes = ReadNotes()
    examples = read_conll(path, tag_errors="drop", notes=notes)
    assert [ex.entities for ex in examples[:2]] == [[], []]
    assert [(examples[2].span_text(e), e.label) for e in examples[2].entities] == [("李", "NAME")]
    assert notes.counts["entities left out: their tags break the scheme (tag_errors=drop)"] == 2


@pytest.mark.skipif(not (SHARED / "resume_ner").is_dir(), reason="needs ../shared/data/resume_ner (CI has it)")
def test_resume_ner_reads_with_the_counts_of_its_source_md():
    expected = {"train": (3821, 124099, 13436), "dev": (463, 13890, 1497), "test": (477, 15100, 1630)}
    for split, (sentences, chars, entities) in expected.items():
        result = stats(str(SHARED / "resume_ner" / f"{split}.char.bmes"), reader_options=ReaderOptions(tag_errors="drop"))
        assert (result["examples"], result["tokens"], sum(result["entities"].values())) == (sentences, chars, entities)
        assert result["format"] == "conll"
        assert result["grammar"]["accepted"] == sentences  # every gold answer can be written
    assert stats(str(SHARED / "resume_ner" / "test.char.bmes"))["entities"]["ORG"] == 553


# -- a bound on training outside the grammar ------------------------------------------------------------------
def test_fit_refuses_when_most_gold_answers_leave_the_grammar(tiny_model_dir, tmp_path):
    data = tmp_path / "stray.jsonl"
    data.write_text('{"text": "Acme hired Bob .", "entities": [{"start": 0, "end": 5, "label": "ORG"}]}\n' * 3,
                    encoding="utf-8")
    args = fit_args(tiny_model_dir, tmp_path, "--data.train", str(data), "--data.val", "null", "--data.test", "null",
                    "--data.reader_options.trim_spans", "false", "--data.loss_on", "candidates",
                    "--trainer.max_steps", "1")
    with pytest.raises(ConfigError, match=r"3 of 3 gold answers leave the grammar.*data.loss_on answer"):
        run(args)





# -- every exact round trip is inside the grammar --------------------------------------------------------------
CORPORA = ["conll2003/test.txt", "conll04/conll04_test.json", "ade/ade_split_0_test.json",
           "scierc/scierc_test.json", "resume_ner/test.char.bmes"]
FIXTURES = sorted(p for p in [*(HERE / "formats").iterdir(), *CJK.iterdir()] if p.suffix in (".json", ".jsonl"))


@pytest.mark.parametrize("formulation", ["tagged", "bio"])
@pytest.mark.parametrize("path", [*(SHARED / c for c in CORPORA), *FIXTURES, HERE / "formats" / "brat"],
                         ids=lambda p: p.name if isinstance(p, Path) else p)
def test_every_exact_round_trip_is_inside_the_grammar(path, formulation):
    """The grammar allows everything the formulation writes and reads back (the test split of every corpus
    in ../shared/data, whose train splits benchmarks/grammar_coverage.py checks, and every format fixture)."""
    examples = load_examples(path, notes=ReadNotes())
    fm = get_formulation(formulation, Schema.infer(examples))
    parsed, defects = fm.parse(examples, [fm.encode(ex) for ex in examples])
    exact = [ex for ex, got, found in zip(examples, parsed, defects)
             if got.same_annotations(fm.representable(ex)[0]) and not found]
    assert len(exact) >= 0.9 * len(examples)
    coverage = grammar_coverage(fm, exact)
    assert coverage["accepted"] == len(exact), coverage["outside"]


def test_a_tiny_model_fits_and_predicts_chinese_with_exact_offsets(tiny_model_dir, tmp_path):
    """Fit on real CJK annotations (doccano, with offsets), then predict them back with constrained decoding."""
    from nerre.metrics import score_entities
    from nerre.predict import Extractor

    data = CJK / "doccano_zh.jsonl"
    run(fit_args(tiny_model_dir, tmp_path, "--data.train", str(data), "--data.val", "null", "--data.test", "null",
                 "--data.schema", "null", "--data.loss_on", "candidates", "--trainer.max_steps", "60",
                 "--data.batch_size", "4", "--model.init_args.lr", "0.02"))
    (adapter,) = tmp_path.glob("runs/**/adapter")
    gold = load_examples(data, notes=ReadNotes())
    predictions = Extractor.load(adapter).predict(gold)
    found = [p.example for p in predictions]
    assert all(not p.defects for p in predictions)
    for ex, got in zip(gold, found):
        assert got.text == ex.text
        for e in got.entities:  # every entity maps back to exact character offsets of the source
            assert 0 <= e.start < e.end <= len(ex.text) and got.span_text(e) == ex.text[e.start : e.end]
    assert score_entities(gold, found).micro.f1 == 1.0  # it learned them: tags between Han characters
