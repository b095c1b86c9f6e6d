"""spaCy export: exact text, aligned entities (nested ones in doc.spans), relations via ``Doc._.relations``,
DocBin round trips, reported (never silent) alignment failures, displaCy HTML, and the real CoNLL04 test set."""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin

from nerre.example import Entity, Example, Relation, Token
from nerre.loaders import load_examples
from nerre.spacy_export import (
    SPANS_KEY,
    ExportReport,
    from_doc,
    load_docbin,
    render_html,
    save_docbin,
    to_doc,
    to_docs,
)

TEXTS = {
    "tab": "Barack\tObama visited Paris .",
    "crlf": "Barack Obama\r\nvisited Paris .",
    "double space": "Barack  Obama visited   Paris .",
    "emoji": "Barack Obama 😀 visited Paris 👨‍👩‍👧 today",
    "odd unicode": "Zoë Ünlü met Ōsaka’s mayor\u00a0in São\u2009Paulo\u200b.",
    "combining": "Cafe\u0301 Zoe\u0308 opened in Paris",
    "leading/trailing": "  \n Barack Obama visited Paris . \t\n",
    "only whitespace": " \t\r\n ",
    "empty": "",
}


def annotated(text: str, id: str = "x") -> Example:
    """Every word an entity, the first two words also as one outer entity, and relations between them."""
    example = Example(text, id=id)
    words = [t for t in example.tokens if text[t.start : t.end].isalnum() or len(text[t.start : t.end]) > 1]
    entities = [Entity(t.start, t.end, "W") for t in words]
    relations = []
    if len(words) >= 2:
        outer = Entity(words[0].start, words[1].end, "PAIR")
        entities.append(outer)
        relations = [Relation(entities[0], entities[-2], "first_last"), Relation(outer, entities[1], "contains")]
    return Example(text, entities, relations, example.tokens, id)


def roundtrip(docs: list[Doc], path: Path) -> list[Doc]:
    return load_docbin(save_docbin(docs, path))


# -- text, tokens, entities ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TEXTS)
def test_text_and_annotations_survive_docbin(name: str, tmp_path: Path) -> None:
    example = annotated(TEXTS[name])
    doc, report = to_doc(example)
    assert doc.text == example.text
    assert report.ok and report.entities == len(example.entities) and report.relations == len(example.relations)
    [loaded] = roundtrip([doc], tmp_path / "x.spacy")
    assert loaded.text == example.text
    back = from_doc(loaded)
    assert back.text == example.text and back.id == "x"
    assert back.tokens == example.tokens
    assert back.same_annotations(example)
    assert back.entities == example.entities and back.relations == example.relations


@pytest.mark.parametrize("name", TEXTS)
def test_nlp_tokenizer_keeps_text(name: str) -> None:
    doc, _ = to_doc(Example(TEXTS[name]), nlp=spacy.blank("en"))
    assert doc.text == TEXTS[name]


def test_ents_are_aligned_char_spans_and_nested_go_to_span_group() -> None:
    text = "The University of California at Berkeley hired John Smith ."
    uni, cal, berkeley, john = (
        Entity(text.index(s), text.index(s) + len(s), label)
        for s, label in [("University of California at Berkeley", "ORG"), ("California", "LOC"), ("Berkeley", "LOC"),
                         ("John Smith", "PER")]
    )
    doc, report = to_doc(Example(text, [cal, uni, john, berkeley], [Relation(john, uni, "Work_For")]))
    assert report.ok
    assert [(e.start_char, e.end_char, e.label_, e.text) for e in doc.ents] == [
        (4, 40, "ORG", "University of California at Berkeley"),
        (47, 57, "PER", "John Smith"),
    ]
    starts = [t for e in doc.ents for t in range(e.start, e.end)]
    assert len(starts) == len(set(starts))  # non-overlapping
    assert sorted((s.start_char, s.end_char, s.label_) for s in doc.spans[SPANS_KEY]) == sorted(
        (e.start, e.end, e.label) for e in (uni, cal, berkeley, john)
    )
    assert {s.text for s in doc.spans[SPANS_KEY]} >= {"California", "Berkeley"}


def test_example_tokens_define_doc_tokens() -> None:
    example = Example("New York-based Acme", tokens=[Token(0, 3), Token(4, 14), Token(15, 19)])
    doc, _ = to_doc(example)
    assert [t.text for t in doc] == ["New", "York-based", "Acme"]
    with pytest.raises(ValueError, match="example 'bad'"):
        to_doc(Example("ab cd", tokens=[Token(3, 5), Token(0, 2)], id="bad"))


# -- alignment failures are reported --------------------------------------------------------------------
def test_entity_inside_a_token_is_reported_not_dropped(tmp_path: Path) -> None:
    text = "Washington lies east of Seattle ."
    half, seattle = Entity(0, 4, "LOC"), Entity(24, 31, "LOC")  # "Wash" is half a word
    example = Example(text, [half, seattle], [Relation(half, seattle, "east_of")], id="half")
    doc, report = to_doc(example, nlp=spacy.blank("en"))
    assert report.unaligned == [("half", half)]
    assert report.dropped_relations == [("half", Relation(half, seattle, "east_of"))]
    assert (report.entities, report.relations, report.ok) == (2, 1, False)
    assert "1 could not be aligned" in str(report) and "1 dropped" in str(report)
    assert [s.text for s in doc.spans[SPANS_KEY]] == ["Seattle"] and doc._.relations == []
    # the report survives the .spacy file
    assert ExportReport.from_docs(roundtrip([doc], tmp_path / "half.spacy")) == report
    # and is summed over many docs
    _, total = to_docs([example, Example("fine", [Entity(0, 4, "X")])], nlp=spacy.blank("en"))
    assert (total.docs, total.entities, len(total.unaligned), len(total.dropped_relations)) == (2, 3, 1, 1)


def test_expand_alignment_moves_and_reports() -> None:
    half = Entity(0, 4, "LOC")
    doc, report = to_doc(Example("Washington lies east", [half]), nlp=spacy.blank("en"), alignment="expand")
    assert [s.text for s in doc.ents] == ["Washington"]
    assert report.unaligned == [] and report.adjusted == [(None, half, Entity(0, 10, "LOC"))]


# -- relations ------------------------------------------------------------------------------------------
def test_relations_extension_before_and_after_disk(tmp_path: Path) -> None:
    text = "John Smith works for Acme Corp in Boston ."
    john, acme, corp, boston = Entity(0, 10, "PER"), Entity(21, 30, "ORG"), Entity(21, 25, "ORG"), Entity(34, 40, "LOC")
    relations = [Relation(john, acme, "Work_For"), Relation(acme, boston, "OrgBased_In"), Relation(corp, acme, "part")]
    doc, report = to_doc(Example(text, [john, acme, corp, boston], relations, id="rel-1"))
    assert report.ok
    expected = [
        ("John Smith", "PER", "Work_For", "Acme Corp", "ORG"),
        ("Acme Corp", "ORG", "OrgBased_In", "Boston", "LOC"),
        ("Acme", "ORG", "part", "Acme Corp", "ORG"),
    ]
    for d in (doc, *roundtrip([doc], tmp_path / "rel.spacy")):
        assert d._.nerre_id == "rel-1"
        got = [(h.text, h.label_, label, t.text, t.label_) for h, label, t in d._.relations]
        assert sorted(got) == sorted(expected)


def test_docbin_loads_with_plain_spacy(tmp_path: Path) -> None:
    docs, _ = to_docs([annotated(TEXTS["tab"], "a"), annotated(TEXTS["crlf"], "b")])
    path = save_docbin(docs, tmp_path / "sub" / "out.spacy")
    loaded = list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))
    assert [d.text for d in loaded] == [TEXTS["tab"], TEXTS["crlf"]]
    ents = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs]
    assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in loaded] == ents
    assert [len(d._.relations) for d in loaded] == [2, 2]


def test_a_failed_docbin_write_keeps_the_previous_file_whole(tmp_path: Path, monkeypatch) -> None:
    docs, _ = to_docs([annotated(TEXTS["tab"], "a")])
    path = save_docbin(docs, tmp_path / "out.spacy")
    before = path.read_bytes()

    def broken(self):
        raise KeyboardInterrupt  # interrupted while the file is being written

    monkeypatch.setattr(DocBin, "to_bytes", broken)
    with pytest.raises(KeyboardInterrupt):
        save_docbin(docs * 2, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.spacy"]


def test_from_doc_of_a_plain_doc_uses_ents() -> None:
    doc = spacy.blank("en")("Ada Lovelace wrote code")
    doc.ents = [doc.char_span(0, 12, label="PER")]
    example = from_doc(doc)
    assert example.entities == [Entity(0, 12, "PER")] and example.relations == [] and example.id is None


# -- HTML -----------------------------------------------------------------------------------------------
def test_render_html_shows_entities_and_relations(tmp_path: Path) -> None:
    text = "John Smith works for Acme <Corp> ."
    john, acme = Entity(0, 10, "PER"), Entity(21, 32, "ORG")
    example = Example(text, [john, acme, Entity(0, 4, "FIRST")], [Relation(john, acme, "Work_For")], id="d1")
    docs, report = to_docs([example])
    assert report.ok
    path = tmp_path / "view" / "page.html"
    page = render_html(docs, path)
    assert path.read_text(encoding="utf-8") == page
    assert page.lstrip().startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for needle in ("John", "Smith", "PER", "ORG", "FIRST", "Work_For", "&lt;Corp&gt;", "<svg", "d1"):
        assert needle in page, needle
    assert "<Corp>" not in page


# -- the real corpus ------------------------------------------------------------------------------------
def test_conll04_test_set_aligns_and_round_trips(data_dir: Path, tmp_path: Path) -> None:
    examples = load_examples(data_dir / "conll04/conll04_test.json")
    docs, report = to_docs(examples)
    assert report.ok, str(report)
    assert report.docs == len(examples) == 288
    assert report.entities == sum(len(x.entities) for x in examples)
    loaded = roundtrip(docs, tmp_path / "conll04_test.spacy")
    assert ExportReport.from_docs(loaded) == report
    for example, doc in zip(examples, loaded, strict=True):
        assert doc.text == example.text
        back = from_doc(doc)
        assert back.id == example.id and back.tokens == example.tokens
        assert back.entities == example.entities and back.relations == example.relations
