"""Formats told by content (with an error listing the candidates when they cannot be), one set of reader
options across commands, and `nerre data convert`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import TINY_CONFIG, TINY_DATA

from nerre.cli import main, run
from nerre.errors import ConfigError, DataError
from nerre.loaders import ReaderOptions, detect_format, load_examples, write_examples
from nerre.predict import read_inputs

FORMATS_DIR = TINY_DATA / "formats"
CUSTOM = {"content": "Ann Lee met Bob .", "ents": [{"kind": "PER", "from": 0, "to": 7}, {"kind": "PER", "from": 12, "to": 15}],
          "rels": [{"head": 0, "tail": 1, "label": "met"}]}
CUSTOM_OPTIONS = {"text_field": "content", "spans_field": "ents", "label_key": "kind", "start_key": "from",
                  "end_key": "to", "relations_field": "rels"}


def cli_json(args: list[str], capsys) -> dict:
    run(args)
    return json.loads(capsys.readouterr().out)


def option_args(prefix: str, options: dict[str, str]) -> list[str]:
    return [arg for name, value in options.items() for arg in (f"--{prefix}.{name}", value)]


@pytest.mark.parametrize("path, fmt", [
    ("brat", "brat"), ("brat/clinic.ann", "brat"), ("brat/sub/PMID-1.txt", "brat"), ("doccano.jsonl", "doccano"),
    ("doccano_seq.jsonl", "doccano"), ("labelstudio.json", "labelstudio"), ("labelstudio_minimal.json", "labelstudio"),
    ("labelstudio_jsonmin.json", "labelstudio"), ("presidio.json", "json"), ("../tiny.jsonl", "jsonl"),
])
def test_formats_are_told_by_content(path, fmt):
    assert detect_format(FORMATS_DIR / path) == fmt


def test_real_corpora_are_told_by_content(data_dir, tmp_path):
    assert detect_format(data_dir / "conll2003/test.txt") == "conll"
    assert detect_format(data_dir / "conll04/conll04_test.json") == "spert"
    write_examples(load_examples(FORMATS_DIR / "doccano.jsonl"), tmp_path / "x.spacy", "spacy")
    assert detect_format(tmp_path / "x.spacy") == "spacy"


def test_raw_text_is_not_taken_for_columns(tmp_path):
    patient = tmp_path / "notes.txt"
    patient.write_text("Patient Smith type O\nPatient Jones type O\nPatient Brown type O\nPatient Green type O\n")
    room = tmp_path / "rooms.txt"
    room.write_text("Seen in room B-12\nMoved to ward I-3\n")
    for path in (patient, room):
        assert detect_format(path, allow_text=True) == "text"
        with pytest.raises(DataError, match=r"cannot tell the format \(line 1 .*\); choose one with --format: conll,"):
            detect_format(path)
    assert [x.text for x in read_inputs(patient)] == patient.read_text().splitlines()
    assert len(read_inputs(patient, "conll")) == 1  # when the user says so
    germeval = tmp_path / "germeval.tsv"  # index, token, tag: words between first and last column, in sentences
    germeval.write_text("1\tSchartau\tB-PER\n2\tsagte\tO\n\n1\tin\tO\n2\tBerlin\tB-LOC\n")
    assert detect_format(germeval) == "conll"


def test_ambiguous_or_unknown_json_lists_the_candidates(tmp_path):
    both = tmp_path / "both.json"
    both.write_text(json.dumps([{"tokens": ["a"], "entities": [], "relations": [], "data": {"text": "a"}}]))
    with pytest.raises(DataError, match="could be read as labelstudio or spert .*choose with --format labelstudio "
                                        "or --format spert"):
        load_examples(both)
    assert load_examples(both, "spert")[0].text == "a"
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(DataError, match=r"cannot tell the format \(records with keys \['foo'\]\); choose one with "
                                        "--format: conll, spert, jsonl, json, hf, brat, doccano, labelstudio, spacy"):
        load_examples(unknown)


def test_reader_options_choose_among_formats_and_name_only_options_that_exist(tmp_path):
    custom = tmp_path / "custom.jsonl"
    custom.write_text(json.dumps(CUSTOM) + "\n")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_examples(custom)
    assert detect_format(custom, CUSTOM_OPTIONS) == "jsonl"
    (example,) = load_examples(custom, options=ReaderOptions(**CUSTOM_OPTIONS))
    assert [example.span_text(e) for e in example.entities] == ["Ann Lee", "Bob"] and len(example.relations) == 1
    with pytest.raises(ConfigError, match="reader option.*offsets do not apply to format 'jsonl'; it takes text_field"):
        load_examples(custom, "jsonl", {**CUSTOM_OPTIONS, "offsets": "utf16"})


def test_every_command_takes_the_same_reader_options(tmp_path, capsys):
    custom = tmp_path / "custom.jsonl"
    custom.write_text(json.dumps(CUSTOM) + "\n")
    stats = cli_json(["data", "stats", str(custom), *option_args("reader_options", CUSTOM_OPTIONS)], capsys)
    assert stats["entities"] == {"PER": 2} and stats["relations"] == {"met": 1} and stats["format"] == "jsonl"
    result = cli_json(["data", "roundtrip", str(custom), *option_args("reader_options", CUSTOM_OPTIONS)], capsys)
    assert result["exact"] == 1
    write_examples(load_examples(custom, options=CUSTOM_OPTIONS), tmp_path / "pred.json", "labelstudio",
                   predictions=True)
    scores = cli_json(["evaluate", "--gold", str(custom), *option_args("gold_options", CUSTOM_OPTIONS),
                       "--pred", str(tmp_path / "pred.json"), "--pred_options.offsets", "chars"], capsys)
    assert scores["entities"]["f1"] == 1.0 and scores["relations"]["strict"]["f1"] == 1.0
    with pytest.raises(SystemExit):
        main(["data", "stats", str(custom), "--reader_options.kind", "PER"])
    assert "kind" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "stats", str(custom), "--format", "jsonl", "--reader_options.scheme", "iob1"])
    assert exit_info.value.code == 2
    assert "reader option(s) scheme do not apply to format 'jsonl'" in capsys.readouterr().err


def test_fit_takes_reader_options_under_the_same_names(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", str(TINY_CONFIG), "--data.data_dir", str(TINY_DATA),
             "--data.reader_options.label_key", "label", "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["reader_options"]["label_key"] == "label"
    assert ReaderOptions.of({"label_key": "label"}) == ReaderOptions(label_key="label")


def test_training_data_from_annotation_tools(tmp_path):
    from tiny import tiny_model, tiny_tokenizer

    from nerre.datamodule import ExtractionData

    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tok")
    tiny_model(tokenizer).config.save_pretrained(tmp_path / "tok")
    data = ExtractionData(train="brat", val="labelstudio.json", data_dir=str(FORMATS_DIR), model=str(tmp_path / "tok"),
                          cache_dir=str(tmp_path / "cache"))
    assert len(data.examples["train"]) == 3 and len(data.examples["val"]) == 4
    assert {"Protein", "PER"} <= {label.name for label in data.schema.entities}
    assert "Theme" in {label.name for label in data.schema.relations}
    data = ExtractionData(train="labelstudio.json", data_dir=str(FORMATS_DIR), model=str(tmp_path / "tok"),
                          reader_options={"offsets": "chars", "text_field": "text"})
    assert data.reader_options == ReaderOptions(offsets="chars", text_field="text")
    with pytest.raises(ConfigError, match="reader option.*offsets do not apply to format 'brat'"):
        ExtractionData(train="brat", data_dir=str(FORMATS_DIR), model=str(tmp_path / "tok"),
                       reader_options={"offsets": "utf16"})


@pytest.mark.parametrize("name", ["brat", "doccano.jsonl", "labelstudio.json"])
def test_stats_summarise_annotation_tool_exports(name, capsys):
    stats = cli_json(["data", "stats", str(FORMATS_DIR / name)], capsys)
    assert stats["examples"] == {"brat": 3, "doccano.jsonl": 3, "labelstudio.json": 4}[name]
    assert stats["entities"] and stats["relations"] and stats["converted"]


def test_data_convert_between_formats(tmp_path, capsys):
    summary = cli_json(["data", "convert", str(FORMATS_DIR / "brat"), str(tmp_path / "tasks.json"),
                        "--to", "labelstudio"], capsys)
    assert (summary["from"], summary["to"], summary["examples"], summary["relations"]) == ("brat", "labelstudio", 3, 10)
    assert any("events (E)" in line for line in summary["converted on reading"]) and summary["not carried over"] == []
    assert load_examples(tmp_path / "tasks.json") == load_examples(FORMATS_DIR / "brat")
    summary = cli_json(["data", "convert", str(tmp_path / "tasks.json"), str(tmp_path / "out.conll")], capsys)
    assert summary["to"] == "conll" and "10 relations not written (the format holds none)" in summary["not carried over"][-1]
    with pytest.raises(SystemExit):
        main(["data", "convert", str(tmp_path / "tasks.json"), str(tmp_path / "out.xml")])
    assert "cannot tell the output format of" in capsys.readouterr().err


def test_unknown_output_format(tmp_path):
    with pytest.raises(ConfigError, match="unknown output format 'xml'"):
        write_examples([], Path(tmp_path / "x"), "xml")
