"""`nerre predict` and the Python API on an adapter trained by `nerre fit` (the tiny session run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_DATA

from nerre.cli import run
from nerre.example import Entity, Example
from nerre.loaders import read_jsonl
from nerre.predict import Extractor, predict, read_inputs

GOLD = TINY_DATA / "tiny.jsonl"


@pytest.fixture(scope="module")
def extractor(tiny_adapter) -> Extractor:
    return Extractor.load(tiny_adapter, constrained=False)


def test_python_api_extracts_entities_relations_and_docs(extractor):
    prediction = extractor("John Smith works for Acme .")
    assert prediction.example.entities == [Entity(0, 10, "PER"), Entity(21, 25, "ORG")]
    assert [(r.head.label, r.label, r.tail.label) for r in prediction.example.relations] == [("PER", "Work_For", "ORG")]
    doc = prediction.doc
    assert [(e.text, e.label_) for e in doc.ents] == [("John Smith", "PER"), ("Acme", "ORG")]
    assert [(h.text, label, t.text) for h, label, t in doc._.relations] == [("John Smith", "Work_For", "Acme")]
    many = extractor(["Mary Jones lives in Paris .", "", "Nothing happened today ."])
    assert [len(p.example.entities) for p in many] == [2, 0, 0]


def test_predict_command_writes_what_evaluate_scores(tiny_adapter, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    run(["predict", "--adapter", str(tiny_adapter), "--input", str(GOLD), "--output", str(out),
         "--constrained", "false", "--evaluate", "true", "--spacy", str(tmp_path / "pred.spacy"),
         "--html", str(tmp_path / "pred.html")])
    summary = json.loads(capsys.readouterr().out)
    assert summary["examples"] == 4 and summary["scores"]["entities"]["f1"] == 1.0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["tiny-0", "tiny-1", "tiny-2", "tiny-3"]
    for record in records:
        for e in record["entities"]:
            assert record["text"][e["start"]:e["end"]] == e["text"]
    run(["evaluate", "--gold", str(GOLD), "--pred", str(out)])
    scores = json.loads(capsys.readouterr().out)
    assert scores["entities"]["f1"] == 1.0 and scores["relations"]["strict"]["f1"] == 1.0

    from nerre.spacy_export import load_docbin

    docs = load_docbin(tmp_path / "pred.spacy")
    assert [len(d.ents) for d in docs] == [2, 2, 3, 0]
    assert [len(d._.relations) for d in docs] == [1, 1, 2, 0]
    html = (tmp_path / "pred.html").read_text()
    assert "John Smith" in html and "Work_For" in html


def test_raw_text_lines_stay_aligned(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_bytes("John Smith works for Acme .\r\n\n\tMary Jones lives in Paris .\r\nnaïve café ✓\n".encode())
    examples = read_inputs(raw)
    assert [ex.text for ex in examples] == ["John Smith works for Acme .", "", "\tMary Jones lives in Paris .",
                                            "naïve café ✓"]


def test_raw_text_predictions_keep_offsets(extractor, tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"John Smith works for Acme .\r\n\r\nMary Jones lives in Paris .\r\n")
    out = tmp_path / "out.jsonl"
    summary = predict(adapter=str(extractor_path(extractor)), input=str(raw), output=str(out), constrained=False)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["examples"] == 3 and [r["text"] for r in records][1] == ""
    third = records[2]
    assert [(e["text"], e["start"]) for e in third["entities"]] == [("Mary Jones", 0), ("Paris", 20)]


def extractor_path(extractor: Extractor) -> Path:
    return Path(extractor.tokenizer.name_or_path)


def test_long_inputs_are_split_and_merged_with_correct_offsets(extractor):
    text = "John Smith works for Acme . Mary Jones lives in Paris ."
    window = extractor.window_tokens
    lengths = [len(extractor.tokenizer(s, add_special_tokens=False)["input_ids"]) for s in text.split(" . ")]
    extractor.window_tokens = max(lengths) + 2  # one sentence fits, both do not
    try:
        pieces = extractor.split(extractor_example(text))
        prediction = extractor(text)
    finally:
        extractor.window_tokens = window
    assert len(pieces) == 2 and pieces[1].id.endswith("@28")
    corpus = Example.from_tokens(["U.S.", "troops", "left", "."] * 20)  # windows keep the corpus tokens
    extractor.window_tokens = 20
    try:
        windows = extractor.split(corpus)
    finally:
        extractor.window_tokens = window
    assert len(windows) > 1
    for w in windows:
        assert [w.text[t.start:t.end] for t in w.tokens] == w.text.split(" ")
    assert [(text[e.start:e.end], e.label) for e in prediction.example.entities] == [
        ("John Smith", "PER"), ("Acme", "ORG"), ("Mary Jones", "PER"), ("Paris", "LOC")]
    assert len(prediction.outputs) == 2


def extractor_example(text: str) -> Example:
    return Example(text, id="doc")


def test_nothing_written_is_lost_when_prediction_fails(tiny_adapter, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = Extractor.generate

    def failing(self, windows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("out of memory")
        return original(self, windows)

    monkeypatch.setattr(Extractor, "generate", failing)
    raw = tmp_path / "raw.txt"
    raw.write_text("John Smith works for Acme .\n" * 12)
    out = tmp_path / "pred.jsonl"
    with pytest.raises(RuntimeError, match="out of memory"):
        predict(adapter=str(tiny_adapter), input=str(raw), output=str(out), batch_size=1)  # chunks of 8 lines
    assert not out.exists()  # the output appears only when complete; what was done is kept beside it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("pred")] == ["pred.jsonl.partial"]
    records = [json.loads(line) for line in (tmp_path / "pred.jsonl.partial").read_text().splitlines()]
    assert [r["id"] for r in records] == [f"raw.txt:{n}" for n in range(1, 9)]
    assert all(len(r["entities"]) == 2 for r in records)


def test_bad_adapter_and_input_errors(tiny_adapter, tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter folder not found"):
        Extractor.load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not an adapter written by `nerre fit`"):
        Extractor.load(tiny_model_dir)
    with pytest.raises(FileNotFoundError, match="missing.txt: input file not found"):
        read_inputs(tmp_path / "missing.txt")
    binary = tmp_path / "bad.txt"
    binary.write_bytes(b"\xff\xfe\x00 broken")
    with pytest.raises(ValueError, match="the file is UTF-16 text; re-save it as UTF-8"):
        read_inputs(binary)
    binary.write_bytes("Café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"bad.txt:1: not UTF-8 text \(byte 0xe9 at column 4\)"):
        read_inputs(binary)
    other_base = tmp_path / "other-base"
    _other_model(other_base)
    with pytest.raises(ValueError, match="does not fit base model"):
        Extractor.load(tiny_adapter, base_model=str(other_base))


def _other_model(folder: Path) -> None:
    from tiny import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer(vocab_size=400)
    tiny_model(tokenizer, hidden_size=48, head_dim=24).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_gold_predictions_read_back(tmp_path):
    """Gold examples written as ``nerre predict`` writes predictions (with ``defects``) read back as the same
    examples and score 1.0 against the gold; a record without an ``id`` is read without one."""
    from collections import Counter

    from nerre.loaders.jsonl import read_predictions
    from nerre.metrics import evaluate
    from nerre.predict import Prediction

    gold = read_jsonl(GOLD)
    assert len(gold) == 4 and sum(len(ex.relations) for ex in gold) >= 2
    records = [Prediction(ex, Counter({"text_drift": i})).to_dict() for i, ex in enumerate(gold)]
    del records[3]["id"]
    (tmp_path / "pred.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    back = read_predictions(tmp_path / "pred.jsonl")
    assert [(ex.id, ex.text, ex.entities, ex.relations) for ex in back] == [
        (ex.id if i < 3 else None, ex.text, ex.entities, ex.relations) for i, ex in enumerate(gold)]
    scores = evaluate(gold, back)
    assert scores["entities"]["f1"] == scores["relations"]["strict"]["f1"] == 1.0


def test_predict_reads_and_writes_annotation_tool_formats(tiny_adapter, tmp_path, capsys):
    """The correct loop: BRAT documents in, Label Studio pre-annotations or BRAT .ann files out, scored back."""
    from nerre.loaders import load_examples, write_examples

    gold = read_jsonl(GOLD)
    write_examples(gold, tmp_path / "brat", "brat")
    run(["predict", "--adapter", str(tiny_adapter), "--input", str(tmp_path / "brat"), "--output",
         str(tmp_path / "tasks.json"), "--to", "labelstudio", "--evaluate", "true"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "labelstudio" and summary["scores"]["entities"]["f1"] == 1.0
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["nerre_id"] for t in tasks] == ["tiny-0", "tiny-1", "tiny-2", "tiny-3"]
    assert tasks[0]["predictions"][0]["result"][0]["value"]["labels"] == ["PER"] and "annotations" not in tasks[0]
    run(["evaluate", "--gold", str(tmp_path / "brat"), "--pred", str(tmp_path / "tasks.json")])
    assert json.loads(capsys.readouterr().out)["relations"]["strict"]["f1"] == 1.0
    run(["predict", "--adapter", str(tiny_adapter), "--input", str(tmp_path / "brat"), "--output",
         str(tmp_path / "pre"), "--to", "brat"])
    assert json.loads(capsys.readouterr().out)["not carried over"] == []
    assert (tmp_path / "pre/tiny-0.ann").read_text().startswith("T1\tPER 0 10\tJohn Smith\n")
    assert [x.same_annotations(g) for x, g in zip(load_examples(tmp_path / "pre"), gold)] == [True] * 4


def test_adapters_saved_with_the_old_length_name_still_load(tmp_path):
    from nerre.adapter import read_settings

    (tmp_path / "nerre.json").write_text(json.dumps({"base_model": "m", "formulation": "tagged", "schema": {},
                                                     "max_length": 320}))
    assert read_settings(tmp_path).max_sequence_tokens == 320


def test_constrained_decoding_of_json_is_refused_with_one_message():
    from conftest import tiny_schema

    from nerre.decoding import use_constraints
    from nerre.errors import ConfigError
    from nerre.formulation import JsonRecords, TaggedText

    assert use_constraints(TaggedText(tiny_schema()), None) is True
    assert use_constraints(JsonRecords(tiny_schema()), None) is False
    with pytest.raises(ConfigError, match="--constrained false"):
        use_constraints(JsonRecords(tiny_schema()), True)
