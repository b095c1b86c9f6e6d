"""Annotation-tool formats in and out: BRAT, doccano, Label Studio, JSON lists, spaCy DocBin, and the token
formats as targets. Each reader on samples written from the tools' documentation (tests/data/formats), its bad
input, and read -> write -> read round trips, relations included."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import TINY_DATA

from nerre.errors import DataError
from nerre.example import Entity, Example, Relation
from nerre.loaders import (
    FORMATS,
    ReadNotes,
    load_examples,
    read_brat,
    read_docbin,
    read_doccano,
    read_json,
    read_jsonl,
    read_labelstudio,
    write_examples,
)

FORMATS_DIR = TINY_DATA / "formats"


def spans(example: Example) -> list[tuple[str, str]]:
    return [(example.span_text(e), e.label) for e in example.entities]


def triples(example: Example) -> list[tuple[str, str, str]]:
    return [(example.span_text(r.head), r.label, example.span_text(r.tail)) for r in example.relations]


def read(path: Path, **options) -> tuple[list[Example], list[str]]:
    notes = ReadNotes()
    return load_examples(path, options=options, notes=notes), notes.lines()


def rich() -> list[Example]:
    """Nested and overlapping entities, relations (one repeated), odd characters, a newline inside an entity."""
    text = "Dr. Zoë Ünlü 😀 joined Acme\nCorp in São Paulo ."
    def ent(s: str, label: str) -> Entity:
        return Entity(text.index(s), text.index(s) + len(s), label)
    zoe, acme, city, sao = ent("Zoë Ünlü", "PER"), ent("Acme\nCorp", "ORG"), ent("São Paulo", "LOC"), ent("São", "X")
    first = Example(text, [zoe, acme, city, sao], [Relation(zoe, acme, "works_for"), Relation(acme, city, "based_in"),
                                                   Relation(acme, city, "based_in")], id="docs/one")
    return [first, Example("Nothing here .", id="two"), Example("", id="three")]


# -- BRAT -----------------------------------------------------------------------------------------------
def test_brat_folder_reads_every_kind_of_line_and_counts_what_it_converts():
    examples, notes = read(FORMATS_DIR / "brat")
    clinic, pmid, blank = examples
    assert [x.id for x in examples] == ["clinic", "sub/PMID-1", "unannotated"]
    assert spans(clinic) == [("Acme Corp", "Organization"), ("Jane Doe", "Person"), ("Paris", "City"),
                             ("left and right ventricles", "Anatomy"), ("right ventricles", "Anatomy"),
                             ("Jane", "Person"), ("Acme", "Organization")]  # after the emoji: code points
    assert triples(clinic) == [("Acme Corp", "Employs", "Jane Doe"), ("Jane Doe", "Lives_In", "Paris"),
                               ("left and right ventricles", "Part_Of", "Jane")]
    assert ("Phosphorylation", "Theme", "STAT1") in triples(pmid)  # events, trigger -> argument
    assert ("induces", "Theme", "expression") in triples(pmid)  # an event argument is that event's trigger
    assert ("binding", "Theme", "JAK2") in triples(pmid)  # Theme2 -> Theme
    assert len(pmid.relations) == 7 and not pmid.text.endswith("\r")
    assert blank.entities == [] and blank.text == "No annotations yet for this note."
    expected = ["1 discontinuous entities", "2 attributes (A)", "1 normalisations (N)", "1 notes (#)",
                "2 equivalences (*)", "1 entities whose stored text differs", "1 duplicate entities",
                "1 relations skipped: an argument names an id absent from the file", "1 attributes (M)",
                "4 events (E) read as relations", "1 .txt files without .ann"]
    assert [line[: len(want)] for line, want in zip(notes, expected)] == expected and len(notes) == len(expected)
    assert "clinic.ann:16 R3 -> T99" in notes[7]


def test_brat_pair_by_either_file_and_bad_input(tmp_path):
    (pmid,) = read_brat(FORMATS_DIR / "brat/sub/PMID-1.ann")
    assert load_examples(FORMATS_DIR / "brat/sub/PMID-1.txt") == [pmid]
    (tmp_path / "a.txt").write_text("short")
    cases = {
        "T1\tX 0 9\tshort": r"a.ann:1: span 0 9 is outside the .txt \(5 characters\)",
        "T1\tX zero 4\tshor": r"a.ann:1: expected 'Label START END'",
        "T1 X 0 4": r"a.ann:1: no tab after the id",
        "T1\tX 0 4\tshor\nR1\tRel Arg1:T1": r"a.ann:2: a relation needs two arguments",
    }
    for ann, message in cases.items():
        (tmp_path / "a.ann").write_text(ann)
        with pytest.raises(DataError, match=message):
            read_brat(tmp_path / "a.ann")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder/lonely.ann").write_text("T1\tX 0 1\tx\n")
    with pytest.raises(DataError, match=r"lonely.ann: no lonely.txt beside it"):
        read_brat(tmp_path / "folder")


def test_brat_round_trip(tmp_path):
    examples, _ = read(FORMATS_DIR / "brat")
    write_examples(examples, tmp_path / "out", "brat")
    assert read_brat(tmp_path / "out") == examples
    write_examples(rich(), tmp_path / "rich", "brat")
    assert (tmp_path / "rich/docs/one.ann").read_text().splitlines()[1] == "T2\tORG 22 26;27 31\tAcme Corp"
    back = read_brat(tmp_path / "rich")
    assert [x.id for x in back] == ["docs/one", "three", "two"]
    assert {x.id: x for x in back} == {x.id: x for x in rich()}
    spaced = Example("Ann met Bob", [Entity(0, 3, "a person"), Entity(8, 11, "PER")], id="s")
    spaced.relations = [Relation(spaced.entities[0], spaced.entities[1], "met with")]
    notes = write_examples([spaced], tmp_path / "spaced", "brat")
    assert triples(read_brat(tmp_path / "spaced")[0]) == [("Ann", "met_with", "Bob")]
    assert str(notes) == "2 labels holding spaces written with '_' (a BRAT type cannot hold spaces) (first: a person)"


# -- doccano --------------------------------------------------------------------------------------------
def test_doccano_offsets_in_characters_or_utf16_are_detected_and_said():
    chars, chars_notes = read(FORMATS_DIR / "doccano.jsonl")
    utf16, utf16_notes = read(FORMATS_DIR / "doccano_utf16.jsonl")
    assert chars == utf16
    assert spans(chars[1]) == [("Ana Ruiz", "PER"), ("Lisboa", "LOC")] and triples(chars[1]) == [
        ("Ana Ruiz", "lives_in", "Lisboa")]
    assert triples(chars[0]) == [("Google", "based_in", "California"), ("Larry Page", "founded", "Google")]
    assert [x.id for x in chars] == ["1", "2", "3"]
    assert chars_notes[0].startswith("offsets read as characters (detected")
    assert utf16_notes[0].startswith("offsets read as UTF-16 code units (detected")
    assert "1 relations skipped: from_id or to_id names no entity" in utf16_notes[1]
    forced, notes = read(FORMATS_DIR / "doccano_utf16.jsonl", offsets="chars")
    # read as characters, the spans shift by the emoji's extra unit: they end in a space, which is trimmed and said
    assert spans(forced[1]) == [("na Ruiz", "PER"), ("isboa", "LOC")] and "(offsets=chars)" in notes[0]
    assert any(note.startswith("2 spans with white space at an end trimmed") for note in notes)


def test_doccano_sequence_labeling_export_and_round_trip(tmp_path):
    (ada, empty), _ = read(FORMATS_DIR / "doccano_seq.jsonl")
    assert spans(ada) == [("Ada Lovelace", "PER"), ("Charles Babbage", "PER"), ("London", "LOC")]
    write_examples(rich(), tmp_path / "d.jsonl", "doccano")
    assert read_doccano(tmp_path / "d.jsonl") == rich()
    record = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])
    assert set(record["entities"][0]) == {"id", "label", "start_offset", "end_offset"}
    assert set(record["relations"][0]) == {"id", "from_id", "to_id", "type"}


def test_doccano_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "abc", "entities": []}\n{"id": 2, "content": "abc", "entities": []}\n')
    with pytest.raises(DataError, match="bad.jsonl:2: field 'data' must hold the text.*set the reader option text_field"):
        read_doccano(bad)
    bad.write_text('{"text": "abc", "entities": [{"id": 1, "label": "X", "start_offset": 1, "end_offset": 9}]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: entity 1 \[1, 9\) is outside the text"):
        read_doccano(bad)


# -- Label Studio ---------------------------------------------------------------------------------------
def test_labelstudio_full_export():
    (first, rocket, predicted, cancelled), notes = read(FORMATS_DIR / "labelstudio.json")
    assert [x.id for x in (first, rocket, predicted, cancelled)] == ["1", "2", "3", "4"]
    assert spans(first) == [("Maria Lopez", "PER"), ("aspirin", "DRUG"), ("Tom", "PER"),
                            ("Mercy Hospital", "LOC"), ("Mercy Hospital", "ORG"), ("Boston", "LOC")]  # two labels
    assert triples(first) == [("Maria Lopez", "knows", "Tom"), ("Maria Lopez", "treats", "Tom"),
                              ("Maria Lopez", "works_at", "Mercy Hospital"), ("aspirin", "takes", "Tom"),
                              ("Mercy Hospital", "located_in", "Boston")]  # direction left reversed
    assert spans(rocket) == [("Oslo", "LOC"), ("Bergen", "LOC"), ("Kari", "PER")]  # latest annotation, UTF-16
    assert spans(predicted) == [("Rome", "LOC")] and cancelled.entities == []
    assert notes[0].startswith("offsets read as UTF-16 code units (detected: 3 of 3")
    for phrase in ("1 tasks with several annotations", "1 tasks without an annotation read from their last prediction",
                   "1 tasks without an annotation read without entities", "1 results of type 'choices' ignored",
                   "1 relations without a label skipped", "1 bidirectional relations",
                   "2 relations on a span with several labels"):
        assert any(line.startswith(phrase) for line in notes), phrase


def test_labelstudio_minimal_and_json_min_exports():
    (full,), _ = read(FORMATS_DIR / "labelstudio_minimal.json")
    assert full == read(FORMATS_DIR / "labelstudio.json")[0][0]
    (flat,), notes = read(FORMATS_DIR / "labelstudio_jsonmin.json")
    assert flat.entities == full.entities and flat.relations == [] and "JSON-MIN" in notes[0]


def test_labelstudio_writes_annotations_or_predictions_that_read_back(tmp_path):
    write_examples(rich(), tmp_path / "gold.json", "labelstudio")
    write_examples(rich(), tmp_path / "pred.json", "labelstudio", predictions=True)
    gold_tasks = json.loads((tmp_path / "gold.json").read_text())
    pred_tasks = json.loads((tmp_path / "pred.json").read_text())
    assert gold_tasks[0]["data"]["text"] == rich()[0].text and "annotations" in gold_tasks[0]
    result = pred_tasks[0]["predictions"][0]["result"]
    assert pred_tasks[0]["predictions"][0]["model_version"] == "nerre"
    assert result[0] == {"id": "e0", "from_name": "label", "to_name": "text", "type": "labels",
                         "value": {"start": 4, "end": 12, "text": "Zoë Ünlü", "labels": ["PER"]}}
    assert {"from_id": "e0", "to_id": "e1", "type": "relation", "direction": "right", "labels": ["works_for"]} in result
    once = rich()
    once[0].relations = once[0].relations[:2]  # Label Studio holds a label once per pair: the repeat is written once
    assert read_labelstudio(tmp_path / "gold.json") == once
    notes = ReadNotes()
    assert read_labelstudio(tmp_path / "pred.json", notes=notes) == once
    assert "3 tasks without an annotation read from their last prediction" in str(notes)
    lost = write_examples(rich(), tmp_path / "again.json", "labelstudio")
    assert lost.lines() == ["1 relations repeated on the same span pair written once (a Label Studio relation "
                            "holds each label once) (first: docs/one)"]


def test_labelstudio_writes_the_labels_of_one_span_pair_as_one_relation(tmp_path):
    (first, *_), _ = read(FORMATS_DIR / "labelstudio.json")
    write_examples([first], tmp_path / "tasks.json", "labelstudio")
    result = json.loads((tmp_path / "tasks.json").read_text())[0]["annotations"][0]["result"]
    relations = [r for r in result if r["type"] == "relation"]
    pairs = [(r["from_id"], r["to_id"]) for r in relations]
    assert len(pairs) == len(set(pairs)) == 4  # Label Studio's editor keeps one relation per pair
    assert ["knows", "treats"] in [r["labels"] for r in relations]
    assert read_labelstudio(tmp_path / "tasks.json")[0].relations == first.relations


def test_labelstudio_prediction_ids_and_json_min_of_unannotated_tasks(tmp_path):
    tasks = json.loads((FORMATS_DIR / "labelstudio.json").read_text())
    tasks[2]["predictions"] = [17, 18]  # Label Studio's default JSON export of a task that only has predictions
    (tmp_path / "ids.json").write_text(json.dumps(tasks))
    examples, notes = read(tmp_path / "ids.json")
    assert len(examples) == 4 and examples[2].entities == [] and examples[0].entities  # the annotated tasks read
    assert any(line.startswith("1 tasks without an annotation whose predictions the export holds as ids only "
                               "read without entities; export the predictions in full") for line in notes)
    tasks[2]["predictions"] = ["seventeen"]
    (tmp_path / "bad.json").write_text(json.dumps(tasks))
    with pytest.raises(DataError, match=r"record 2: a prediction needs 'result', a list; found string 'seventeen'"):
        read_labelstudio(tmp_path / "bad.json")
    # JSON-MIN of a task without an annotation: its data, id and the annotation fields, all null, and no spans
    flat = [{"text": "Unlabelled task about Rome.", "nerre_id": "doc-3", "id": 3, "annotator": None,
             "annotation_id": None, "created_at": None, "updated_at": None, "lead_time": None}]
    (tmp_path / "min.json").write_text(json.dumps(flat))
    (example,), notes = read(tmp_path / "min.json")
    assert (example.id, example.entities) == ("doc-3", [])
    assert any("JSON-MIN records of tasks without an annotation read without entities" in line for line in notes)


def test_labelstudio_ids_written_by_nerre_win_over_task_ids(tmp_path):
    write_examples([Example("PMID text .", id="PMID-10233888")], tmp_path / "tasks.json", "labelstudio")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    exported = [{"id": 222, "data": tasks[0]["data"], "annotations": [{"id": 5, "result": []}]}]
    (tmp_path / "export.json").write_text(json.dumps(exported))
    assert read_labelstudio(tmp_path / "export.json")[0].id == "PMID-10233888"
    write_examples(read_labelstudio(tmp_path / "export.json"), tmp_path / "brat", "brat")
    assert (tmp_path / "brat" / "PMID-10233888.ann").is_file()
    exported[0]["data"] = {"text": "PMID text ."}
    (tmp_path / "export.json").write_text(json.dumps(exported))
    assert read_labelstudio(tmp_path / "export.json")[0].id == "222"  # no id of nerre's: Label Studio's


def test_labelstudio_duplicate_regions_are_merged_and_said(tmp_path):
    span = {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": 0, "end": 4, "text": "Rome", "labels": ["LOC"]}}
    results = [span | {"id": "r1"}, span | {"id": "r2"},
               {"from_id": "r2", "to_id": "r3", "type": "relation", "labels": ["in"]},
               {"id": "r3", "from_name": "label", "to_name": "text", "type": "labels",
                "value": {"start": 8, "end": 13, "text": "Italy", "labels": ["LOC"]}}]
    (tmp_path / "dup.json").write_text(json.dumps([{"id": 1, "data": {"text": "Rome in Italy"},
                                                     "annotations": [{"result": results}]}]))
    (example,), notes = read(tmp_path / "dup.json")
    assert spans(example) == [("Rome", "LOC"), ("Italy", "LOC")] and triples(example) == [("Rome", "in", "Italy")]
    assert "1 duplicate spans (same offsets and label in two regions) merged into one entity (first: dup.json:0)" in notes


def test_labelstudio_predictions_carry_scores_and_model_version(tmp_path):
    (first, *_), _ = read(FORMATS_DIR / "labelstudio.json")
    first.scores = {e: 0.5 + k / 100 for k, e in enumerate(first.entities)}
    first.scores.update({r: 0.9 - k / 10 for k, r in enumerate(first.relations)})
    first.score = 0.25
    write_examples([first], tmp_path / "pred.json", "labelstudio", predictions=True, model_version="nerre conll04")
    (prediction,) = json.loads((tmp_path / "pred.json").read_text())[0]["predictions"]
    assert (prediction["model_version"], prediction["score"]) == ("nerre conll04", 0.25)
    spans_ = [r for r in prediction["result"] if r["type"] == "labels"]
    assert [r["score"] for r in spans_] == [r["value"]["score"] for r in spans_] == [0.5, 0.51, 0.52, 0.53, 0.54, 0.55]
    pair = next(r for r in prediction["result"] if r["type"] == "relation" and len(r["labels"]) == 2)
    assert pair["score"] == round(min(first.scores[r] for r in first.relations if r.label in ("knows", "treats")), 6)
    (back,) = read_labelstudio(tmp_path / "pred.json")  # read from the prediction: its scores come back
    assert back.score == 0.25 and {e: back.scores[e] for e in back.entities} == {e: first.scores[e] for e in first.entities}
    assert back.scores[next(r for r in back.relations if r.label == "takes")] == pytest.approx(first.scores[
        next(r for r in first.relations if r.label == "takes")], abs=1e-6)


def test_labelstudio_bad_input(tmp_path):
    bad = tmp_path / "ls.json"
    bad.write_text(json.dumps([{"id": 7, "annotations": [], "data": "text"}]))
    with pytest.raises(DataError, match=r"ls.json: record 0: a task needs 'data'"):
        read_labelstudio(bad)
    bad.write_text(json.dumps([{"data": {"body": "a", "title": "b"}, "annotations": []}]))
    with pytest.raises(DataError, match="string fields: body, title.*set the reader option text_field"):
        read_labelstudio(bad)
    assert read_labelstudio(bad, text_field="body")[0].text == "a"
    span = {"id": "x", "type": "labels", "value": {"start": 0, "end": 3, "labels": []}}
    bad.write_text(json.dumps([{"data": {"text": "abc"}, "annotations": [{"result": [span]}]}]))
    with pytest.raises(DataError, match="value.labels must be a non-empty list"):
        read_labelstudio(bad)


# -- JSON lists, spaCy, token formats -------------------------------------------------------------------
def test_json_list_of_presidio_records(tmp_path):
    examples, _ = read(FORMATS_DIR / "presidio.json")
    assert spans(examples[0]) == [("Ana Ruiz", "PERSON"), ("555-0100", "PHONE_NUMBER")]
    assert [x.id for x in examples] == ["presidio.json:0", "presidio.json:1", "presidio.json:2"]
    with pytest.raises(DataError, match="one JSON list, not JSON Lines.*--format json"):
        read_jsonl(FORMATS_DIR / "presidio.json")
    write_examples(rich(), tmp_path / "r.json", "json")
    assert read_json(tmp_path / "r.json") == rich()


def test_docbin_round_trip_and_plain_spacy_files(tmp_path):
    import spacy
    from spacy.tokens import DocBin

    write_examples(rich(), tmp_path / "r.spacy", "spacy")
    assert read_docbin(tmp_path / "r.spacy") == rich()
    nlp = spacy.blank("en")
    doc = nlp("Ann met Bob in Rome")
    doc.ents = [doc.char_span(0, 3, "PER"), doc.char_span(15, 19, "LOC")]
    doc.spans["sc"] = [doc.char_span(0, 11, "GROUP")]
    DocBin(docs=[doc]).to_disk(tmp_path / "plain.spacy")
    (plain,) = read_docbin(tmp_path / "plain.spacy")
    assert spans(plain) == [("Ann", "PER"), ("Rome", "LOC")] and plain.id == "plain.spacy:0"
    assert spans(read_docbin(tmp_path / "plain.spacy", spans_key="sc")[0]) == [("Ann met Bob", "GROUP")]
    with pytest.raises(DataError, match=r"no doc.spans\['nerre'\].*set the reader option spans_key"):
        read_docbin(tmp_path / "plain.spacy", spans_key="nerre")
    (tmp_path / "fake.spacy").write_text("not a docbin")
    with pytest.raises(DataError, match="not a spaCy DocBin"):
        read_docbin(tmp_path / "fake.spacy")


@pytest.mark.parametrize("fmt", ["conll", "hf"])
def test_column_formats_keep_flat_entities_and_count_the_rest(fmt, tmp_path):
    target = tmp_path / ("out.conll" if fmt == "conll" else "hf")
    notes = write_examples(rich(), target, fmt)
    back = load_examples(target, fmt)
    flat = [("Zoë Ünlü", "PER"), ("Acme Corp", "ORG"), ("São Paulo", "LOC")]
    assert [spans(x) for x in back] == ([flat, []] if fmt == "conll" else [flat, [], []])  # conll has no empty lines
    nested = next(e for e in rich()[0].entities if e.label == "X")
    expected = [
        "texts whose spacing is not single spaces between tokens (the tokens are kept) (first: docs/one)",
        f"nested or overlapping entities not written (one tag per token) (first: docs/one {nested})",
        "3 relations not written (the format holds none) (first: docs/one)",
    ]
    empty = ["1 examples without tokens not written (first: three)"] if fmt == "conll" else []
    assert notes.lines() == [f"1 {line}" if line[0] != "3" else line for line in expected] + empty


def test_spert_keeps_nested_entities_and_relations(tmp_path):
    write_examples(rich(), tmp_path / "s.json", "spert")
    back = load_examples(tmp_path / "s.json", "spert")
    assert [spans(x) for x in back] == [[(s.replace("\n", " "), label) for s, label in spans(x)] for x in rich()]
    assert [triples(x) for x in back] == [[(h.replace("\n", " "), r, t.replace("\n", " ")) for h, r, t in triples(x)]
                                              for x in rich()]


def test_every_format_round_trips(tmp_path):
    """read(write(read(write(x)))) == read(write(x)) for every format: writing what was read loses nothing."""
    for fmt in FORMATS:
        first = tmp_path / fmt / "a"
        write_examples(rich(), first, fmt)
        once = load_examples(first, fmt)
        write_examples(once, tmp_path / fmt / "b", fmt)
        again = load_examples(tmp_path / fmt / "b", fmt)
        assert [(x.text, x.entities, x.relations) for x in again] == [(x.text, x.entities, x.relations) for x in once]
        if fmt != "conll":  # column files name their examples by file and line
            assert again == once, fmt


@pytest.mark.parametrize("reader", [read_brat, read_doccano, read_labelstudio, read_json, read_docbin])
def test_missing_empty_and_non_utf8_files(reader, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        reader(tmp_path / "missing.json")
    if reader is read_docbin:  # a binary format: an empty or a text file is no DocBin, and says so
        for name, data in [("empty.spacy", b""), ("blank.spacy", b"\n \n"),
                           ("latin1.spacy", '{"text": "café"}\n'.encode("latin-1"))]:
            (tmp_path / name).write_bytes(data)
            with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / name))}: not a spaCy DocBin file \("):
                reader(tmp_path / name)
        return
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    if reader is read_brat:  # an empty .txt is an empty document
        assert read_brat(empty) == [Example("\n \n", id="empty")]
    else:
        with pytest.raises(DataError, match="holds no records"):
            reader(empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes('{"text": "café"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt:1: not UTF-8 text"):
        reader(latin1)
