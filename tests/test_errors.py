"""Every user mistake gets one line, `nerre: error: ...`, and exit status 2; nothing is silently misread.

Each test drives the `nerre` command as a user would and asserts the whole message.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_CONFIG, TINY_DATA, fit_args

from nerre.cli import main
from nerre.errors import AdapterError, ConfigError, DataError, NerreError
from nerre.loaders import load_examples, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
GOLD = TINY_DATA / "tiny.jsonl"


def nerre_error(args: list[str], capsys) -> str:
    """Run `nerre ARGS`; assert it fails with one error line and exit status 2; return the message."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("nerre: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0].removeprefix("nerre: error: ")


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def gold_records() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text().splitlines()]


def write_records(path: Path, records: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


# -- nerre evaluate ---------------------------------------------------------------------------------------
def test_evaluate_with_fewer_predictions_than_gold(tmp_path, capsys):
    pred = write_records(tmp_path / "pred.jsonl", gold_records()[:3])
    assert nerre_error(["evaluate", "--gold", str(GOLD), "--pred", str(pred)], capsys) == (
        f"{pred}: cannot pair 4 gold examples ({GOLD}) with 3 predictions: the prediction file must hold one record "
        "per gold example, in any order when both have ids")


def test_evaluate_with_duplicate_prediction_ids(tmp_path, capsys):
    records = gold_records()
    records[2]["id"] = records[1]["id"]
    pred = write_records(tmp_path / "pred.jsonl", records)
    assert nerre_error(["evaluate", "--gold", str(GOLD), "--pred", str(pred)], capsys) == (
        f"{pred}: prediction id(s) 'tiny-1' appear more than once, but every gold id in {GOLD} is unique; give each "
        "prediction the id of its gold example (or no id at all, to pair by position)")


def test_evaluate_with_a_text_that_differs_shows_the_first_difference(tmp_path, capsys):
    records = gold_records()
    records[1]["text"] = records[1]["text"].replace("Paris", "Pari")
    records[1]["entities"] = []
    records[1]["relations"] = []
    pred = write_records(tmp_path / "pred.jsonl", records)
    assert nerre_error(["evaluate", "--gold", str(GOLD), "--pred", str(pred)], capsys) == (
        f"{pred}: the prediction with id 'tiny-1' has a different text from its gold example in {GOLD}, at character "
        "24 (lengths 27 and 26): 'Mary Jones lives in Paris .' vs 'Mary Jones lives in Pari .'; predict from "
        "the same file")


def test_predictions_without_ids_are_paired_by_position(tmp_path, capsys):
    records = gold_records()
    for r in records:
        del r["id"]
    pred = write_records(tmp_path / "pred.jsonl", records)
    main(["evaluate", "--gold", str(GOLD), "--pred", str(pred)])
    scores = json.loads(capsys.readouterr().out)
    assert scores["entities"]["f1"] == 1.0 and scores["relations"]["strict"]["f1"] == 1.0
    # a gold file without ids pairs the same way with predictions that have none
    gold = write_records(tmp_path / "gold.jsonl", records)
    main(["evaluate", "--gold", str(gold), "--pred", str(pred)])
    assert json.loads(capsys.readouterr().out)["entities"]["f1"] == 1.0


def test_duplicate_predictions_count_once(tmp_path, capsys):
    records = gold_records()
    records[0]["entities"].append(dict(records[0]["entities"][0]))  # the same span predicted twice
    records[0]["relations"].append(dict(records[0]["relations"][0]))
    pred = write_records(tmp_path / "pred.jsonl", records)
    main(["evaluate", "--gold", str(GOLD), "--pred", str(pred)])
    scores = json.loads(capsys.readouterr().out)
    assert scores["entities"]["predicted"] == scores["entities"]["gold"] == 7 and scores["entities"]["f1"] == 1.0
    assert scores["relations"]["strict"]["predicted"] == 4 and scores["relations"]["strict"]["f1"] == 1.0


def test_errors_are_one_line_in_a_real_process(tmp_path):
    pred = write_records(tmp_path / "pred.jsonl", gold_records()[:1])
    done = subprocess.run([sys.executable, "-m", "nerre.cli", "evaluate", "--gold", str(GOLD), "--pred", str(pred)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"nerre: error: {pred}: cannot pair 4 gold examples ({GOLD}) with 1 predictions: the "
                           "prediction file must hold one record per gold example, in any order when both have ids\n")


# -- configuration: nerre fit -------------------------------------------------------------------------------
def tiny_config(tmp_path: Path, edit) -> Path:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    edit(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit_with(config: Path, model_dir: Path, root: Path, *extra: str) -> list[str]:
    args = fit_args(model_dir, root, *extra)
    args[2] = str(config)
    return args


@pytest.fixture
def no_model_load(monkeypatch):
    """Configuration errors must surface before the model loads: loading it fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the configuration error was found")

    monkeypatch.setattr("nerre.task.load_model", refuse)


def test_schema_with_a_duplicate_label(tiny_model_dir, tmp_path, capsys, no_model_load):
    def edit(config):
        config["data"]["schema"]["entities"].append({"name": "PER", "display": "human"})

    args = fit_with(tiny_config(tmp_path, edit), tiny_model_dir, tmp_path)
    assert nerre_error(args, capsys) == (
        "the schema lists entity label name(s) 'PER' more than once; each entity label needs its own name and "
        "display name")


def test_schema_with_a_bar_in_a_display_name(tiny_model_dir, tmp_path, capsys, no_model_load):
    def edit(config):
        config["data"]["schema"]["relations"][0]["display"] = "works | for"

    args = fit_with(tiny_config(tmp_path, edit), tiny_model_dir, tmp_path)
    assert nerre_error(args, capsys) == (
        "label 'Work_For': display name 'works | for' contains one of < > | # or a newline, which the tagged output "
        "uses as markup; choose another display name (data.schema ... display)")


def test_crossing_spans_of_one_label_are_named_before_tokenization(tiny_model_dir, tmp_path, capsys, no_model_load):
    records = gold_records()
    records[0]["entities"] = [{"start": 0, "end": 10, "label": "PER"}, {"start": 5, "end": 16, "label": "PER"}]
    records[0]["relations"] = []
    data = tmp_path / "data"
    data.mkdir()
    write_records(data / "tiny.jsonl", records)
    message = nerre_error(fit_args(tiny_model_dir, tmp_path, "--data.data_dir", str(data)), capsys)
    assert message == (
        f"{data / 'tiny.jsonl'}: example tiny-0: entities Entity(start=0, end=10, label='PER') and Entity(start=5, "
        "end=16, label='PER') cross and share a label, which inline tags cannot represent; drop one of them or use "
        "the json formulation")


def test_no_data(tiny_model_dir, tmp_path, capsys):
    def edit(config):
        for split in ("train", "val", "test"):
            del config["data"][split]

    args = fit_with(tiny_config(tmp_path, edit), tiny_model_dir, tmp_path)
    assert nerre_error(args, capsys) == (
        "no data: set data.train, data.val or data.test (paths relative to data.data_dir)")


def test_reader_option_that_does_not_apply(tiny_model_dir, tmp_path, capsys, no_model_load):
    args = fit_args(tiny_model_dir, tmp_path, "--data.reader_options", "{scheme: iob2}")
    assert nerre_error(args, capsys) == (
        f"{TINY_DATA / 'tiny.jsonl'}: reader option(s) scheme do not apply to format 'jsonl'; it takes text_field, "
        "spans_field, label_key, value_key, start_key, end_key, relations_field, trim_spans")


def test_missing_data_file(tiny_model_dir, tmp_path, capsys):
    message = nerre_error(fit_args(tiny_model_dir, tmp_path, "--data.train", "missing.jsonl"), capsys)
    assert message == f"{TINY_DATA / 'missing.jsonl'}: no such file; check the path or data_dir (now {TINY_DATA})"


def test_resuming_from_a_missing_or_damaged_checkpoint(tiny_model_dir, tmp_path, capsys, no_model_load):
    missing = tmp_path / "nope.ckpt"
    assert nerre_error(fit_args(tiny_model_dir, tmp_path, "--ckpt_path", str(missing)), capsys) == (
        f"{missing}: checkpoint not found; pass a .ckpt file from a run's checkpoints/ folder")
    for name, content in (("damaged.ckpt", b"not a checkpoint"), ("cut.ckpt", b"PK\x03\x04\x14\x00")):
        damaged = write(tmp_path / name, content)
        message = nerre_error(fit_args(tiny_model_dir, tmp_path, "--ckpt_path", str(damaged)), capsys)
        assert message.startswith(f"{damaged}: cannot read this checkpoint (")
        assert message.endswith("); resume from another checkpoint of the run")


def test_enable_checkpointing_false_is_honoured(tiny_model_dir, tmp_path):
    main(fit_args(tiny_model_dir, tmp_path, "--trainer.enable_checkpointing", "false", "--trainer.max_steps", "2"))
    assert not list(tmp_path.glob("runs/**/*.ckpt"))
    assert list(tmp_path.glob("runs/**/adapter/adapter_model.safetensors"))


def test_default_root_dir_is_honoured(tiny_model_dir, tmp_path):
    root = tmp_path / "elsewhere"
    args = fit_args(tiny_model_dir, tmp_path, "--trainer.max_steps", "1", "--trainer.default_root_dir", str(root))
    args = [a for a in args if a != "--trainer.logger.init_args.save_dir" and a != str(tmp_path / "runs")]
    main(args)
    assert (root / "lightning_logs" / "version_0" / "adapter" / "nerre.json").is_file()
    assert (root / "lightning_logs" / "version_0" / "config.yaml").is_file()


# -- max_sequence_tokens: no example silently cut ----------------------------------------------------------------------
def test_max_sequence_tokens_fits_the_longest_training_example_by_default(tiny_model_dir, tmp_path):
    from test_fit import tiny_data

    data = tiny_data(tiny_model_dir, tmp_path, max_sequence_tokens=None)
    rows = data.tokenized("train")
    assert data.max_sequence_tokens == max(len(r["input_ids"]) for r in rows) and data.truncated["train"] == 0
    assert data.settings()["max_sequence_tokens"] == data.max_sequence_tokens  # the adapter records it


def test_a_cut_that_loses_relations_stops_the_run(tiny_model_dir, tmp_path, capsys, no_model_load):
    from test_fit import tiny_data

    data = tiny_data(tiny_model_dir, tmp_path, max_sequence_tokens=None)
    longest = max(len(r["input_ids"]) for r in data.tokenized("train"))
    answers = [len(data.answer_ids(ex)) for ex in data.examples["train"]]
    cut = longest - min(answers) // 3  # cuts the relation line of at least the longest example
    message = nerre_error(fit_args(tiny_model_dir, tmp_path, "--data.max_sequence_tokens", str(cut)), capsys)
    assert message.startswith(f"{TINY_DATA / 'tiny.jsonl'}: max_sequence_tokens={cut} cuts ")
    assert f"training examples (the longest has {longest} tokens): " in message
    assert message.endswith("relations are never trained on; leave data.max_sequence_tokens unset to fit the longest example, "
                            "or set data.allow_truncation true to train without them")


def test_an_allowed_cut_is_reported_with_what_it_loses(tiny_model_dir, tmp_path, caplog):
    from test_fit import tiny_data

    data = tiny_data(tiny_model_dir, tmp_path, max_sequence_tokens=40, allow_truncation=True)
    data.tokenized("train")
    assert data.truncated["train"] == 4
    assert "max_sequence_tokens=40 cuts 4 of 4 training examples" in caplog.text
    assert "7 of 7 entities and 4 of 4 relations are never trained on" in caplog.text


def test_a_cut_that_loses_only_entities_is_a_warning(tiny_model_dir, tmp_path, caplog):
    from test_fit import tiny_data

    records = [{**r, "relations": []} for r in gold_records()]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_records(data_dir / "tiny.jsonl", records)
    data = tiny_data(tiny_model_dir, tmp_path, data_dir=str(data_dir), max_sequence_tokens=40)
    data.tokenized("train")
    assert "cuts 4 of 4 training examples" in caplog.text and "of 0 relations" in caplog.text


# -- adapters ---------------------------------------------------------------------------------------------------
@pytest.fixture
def broken_adapter(tiny_adapter, tmp_path) -> Path:
    copy = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, copy)
    return copy


def predict_args(adapter: Path, tmp_path: Path) -> list[str]:
    return ["predict", "--adapter", str(adapter), "--input", str(GOLD), "--output", str(tmp_path / "pred.jsonl")]


def test_adapter_without_weights(broken_adapter, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("nerre.adapter.load_model", lambda *a, **k: pytest.fail("the base model was loaded"))
    (broken_adapter / "adapter_model.safetensors").unlink()
    assert nerre_error(predict_args(broken_adapter, tmp_path), capsys) == (
        f"{broken_adapter}: no adapter weights (adapter_model.safetensors or adapter_model.bin) here; the adapter is "
        "incomplete: copy the whole adapter folder that `nerre fit` wrote")


def test_adapter_without_tokenizer(broken_adapter, tmp_path, capsys):
    (broken_adapter / "tokenizer.json").unlink()
    assert nerre_error(predict_args(broken_adapter, tmp_path), capsys) == (
        f"{broken_adapter}: no tokenizer files (tokenizer.json, tokenizer.model, vocab.json) here; copy the whole "
        "adapter folder that `nerre fit` wrote (it saves the tokenizer beside the weights)")


def test_adapter_with_a_corrupt_settings_file(broken_adapter, tmp_path, capsys):
    settings = broken_adapter / "nerre.json"
    settings.write_text(settings.read_text()[:-40])
    message = nerre_error(predict_args(broken_adapter, tmp_path), capsys)
    assert message.startswith(f"{broken_adapter}: nerre.json is damaged (")
    assert message.endswith("); copy it again from the run that trained the adapter")


def test_adapter_with_truncated_weights(broken_adapter, tmp_path, capsys):
    weights = broken_adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    message = nerre_error(predict_args(broken_adapter, tmp_path), capsys)
    assert message.startswith(f"{broken_adapter}: adapter_model.safetensors is damaged (")
    assert message.endswith("; truncated?); copy the adapter folder again, or save the adapter again from a checkpoint")


def test_adapter_on_the_wrong_base_model(tiny_adapter, tmp_path, capsys):
    from test_predict import _other_model

    other = tmp_path / "other-base"
    _other_model(other)
    message = nerre_error([*predict_args(tiny_adapter, tmp_path), "--base_model", str(other)], capsys)
    assert message.startswith(f"{tiny_adapter}: the adapter does not fit base model '{other}'")
    assert message.endswith("; pass the base model it was trained on with --base_model")


def test_python_api_raises_the_same_errors(broken_adapter):
    from nerre.predict import Extractor

    (broken_adapter / "tokenizer.json").unlink()
    with pytest.raises(AdapterError, match="no tokenizer files") as info:
        Extractor.load(broken_adapter)
    assert isinstance(info.value, NerreError) and str(info.value).startswith(f"{broken_adapter}: ")


def test_output_naming_a_folder_fails_before_the_model_loads(tiny_adapter, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("nerre.adapter.load_model", lambda *a, **k: pytest.fail("the base model was loaded"))
    args = ["predict", "--adapter", str(tiny_adapter), "--input", str(GOLD), "--output", str(tmp_path)]
    assert nerre_error(args, capsys) == (
        f"--output {tmp_path} is a folder; name the file to write, e.g. {tmp_path / 'predictions'}.jsonl")


def new_file_mode(folder: Path) -> int:
    """The permissions ``open`` gives a new file under the current umask, asked of the operating system."""
    probe = folder / "probe"
    probe.write_text("")
    mode = probe.stat().st_mode & 0o777
    probe.unlink()
    return mode


def test_adapter_files_have_ordinary_permissions(tiny_adapter, tmp_path):
    from nerre.adapter import export_adapter

    assert {p.name: p.stat().st_mode & 0o777 for p in tiny_adapter.iterdir()} == {
        p.name: new_file_mode(tmp_path) for p in tiny_adapter.iterdir()}
    assert not [p for p in tiny_adapter.parent.iterdir() if p.name.startswith(".adapter")]  # no scratch left
    umask = os.umask(0o027)  # under another umask, the files follow it
    try:
        exported = export_adapter(tiny_adapter, tmp_path / "exported", "# card\n")
    finally:
        os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o777 for p in exported.iterdir()} == {
        p.name: 0o640 for p in exported.iterdir()}


# -- files: byte-order marks, encodings, schemes ---------------------------------------------------------------------
BOM = b"\xef\xbb\xbf"


def test_conll_byte_order_mark_is_stripped_and_said_once(tmp_path, capsys, caplog):
    path = write(tmp_path / "bom.txt", BOM + b"-DOCSTART- -X- O O\n\nJohn NNP B-NP B-PER\nDoe NNP I-NP I-PER\n"
                 b"runs VBZ B-VP O\n")
    with caplog.at_level(logging.WARNING):
        main(["data", "stats", str(path)])
    assert json.loads(capsys.readouterr().out)["examples"] == 1  # -DOCSTART- is not a sentence
    (example,) = load_examples(path)
    assert example.text == "John Doe runs" and example.span_text(example.entities[0]) == "John Doe"
    assert caplog.text.count("starts with a UTF-8 byte-order mark; ignored") == 2  # once per read, two reads


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_json_byte_order_mark_is_stripped(tmp_path, suffix, caplog):
    records = gold_records()
    text = "".join(json.dumps(r) + "\n" for r in records) if suffix == ".jsonl" else json.dumps(
        [{"tokens": ["John", "runs"], "entities": [{"type": "PER", "start": 0, "end": 1}], "relations": []}])
    path = write(tmp_path / f"bom{suffix}", BOM + text.encode())
    examples = load_examples(path)
    assert examples[0].text.startswith("J")
    assert caplog.text.count("byte-order mark") == 1


def test_utf16_file_is_refused_with_what_to_do(tmp_path, capsys):
    path = write(tmp_path / "u16.jsonl", (json.dumps(gold_records()[0]) + "\n").encode("utf-16"))
    assert nerre_error(["data", "stats", str(path)], capsys) == f"{path}: the file is UTF-16 text; re-save it as UTF-8"


def test_non_utf8_jsonl_names_the_line(tmp_path, capsys):
    lines = [json.dumps(r) for r in gold_records()]
    path = write(tmp_path / "latin1.jsonl", ("\n".join(lines[:2]) + "\n").encode() + '{"text": "Café"}\n'.encode("latin-1"))
    assert nerre_error(["data", "stats", str(path)], capsys) == (
        f"{path}:3: not UTF-8 text (byte 0xe9 at column 14); re-save the file as UTF-8")


def test_json_error_reads_without_a_doubled_at(tmp_path, capsys):
    path = write(tmp_path / "ctrl.jsonl", '{"text": "a\tb", "entities": []}\n')
    assert nerre_error(["data", "stats", str(path)], capsys) == (
        f"{path}:1: not valid JSON: Invalid control character at column 12; each line must be one JSON object")


def test_iob2_file_read_as_iob1_is_announced_in_one_line(tmp_path, caplog):
    path = write(tmp_path / "mixed.txt", "John B-PER\nDoe I-PER\nsaw O\nMary I-PER\n\nParis B-LOC\n")
    with caplog.at_level(logging.INFO):
        examples = load_examples(path)
    assert [len(ex.entities) for ex in examples] == [2, 1]
    notices = [r for r in caplog.records if "IOB" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.WARNING
    assert notices[0].getMessage() == (
        f"{path}:4: I-PER follows O, which IOB2 does not allow; read as IOB1 (an I- tag may begin an entity, which "
        "gives the same spans); set scheme 'iob2' to stop at such tags instead")
    with pytest.raises(DataError, match=r"mixed.txt:4: I-PER does not continue a PER entity"):
        load_examples(path, scheme="iob2")
    caplog.clear()
    one_each = write(tmp_path / "one_each.txt", "John B-PER\nsaw O\nMary I-PER\n")  # as many B- as I- starts
    with caplog.at_level(logging.INFO):
        load_examples(one_each)
    assert [r.levelno for r in caplog.records if "IOB" in r.getMessage()] == [logging.WARNING]


@pytest.mark.parametrize("split", ["train.txt", "test.txt"])
def test_plain_iob1_is_said_at_info_level(data_dir, caplog, split):
    with caplog.at_level(logging.INFO):
        load_examples(data_dir / "conll2003" / split)
    (notice,) = [r for r in caplog.records if "IOB1" in r.getMessage()]
    assert notice.levelno == logging.INFO
    first = {"train.txt": "3: I-ORG begins a sentence", "test.txt": "5: I-LOC follows O"}[split]
    assert notice.getMessage() == (f"{data_dir / 'conll2003' / split}:{first}, beginning an entity, so the tags are "
                                   "read as IOB1 (as in CoNLL-2003); set scheme to override")


def test_unknown_scheme_option(tmp_path, capsys):
    path = write(tmp_path / "a.txt", "John B-PER\n")
    with pytest.raises(ConfigError, match="unknown tag scheme 'iob3'; choose one of iob1, iob2, bioes"):
        load_examples(path, scheme="iob3")


def test_prediction_progress_counts_texts_not_windows(tiny_adapter, monkeypatch):
    from nerre import predict as predict_module
    from nerre.example import Example

    bars = []

    class Bar:
        def __init__(self, total, enabled):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            pass

    monkeypatch.setattr(predict_module, "_progress", Bar)
    extractor = predict_module.Extractor.load(tiny_adapter)
    extractor.window_tokens = 8  # the long text takes several windows
    texts = [Example("John Smith works for Acme . " * 6), Example("Mary Jones lives in Paris .")]
    assert len(extractor.split(texts[0])) > 1
    list(extractor.predict(texts, progress=True))
    assert (bars[0].total, bars[0].n) == (2, 2)


def test_result_files_record_data_paths_relative_to_the_data_folder(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run as benchmark

    data_dir = tmp_path / "data"
    (data_dir / "conll04").mkdir(parents=True)
    file = write(data_dir / "conll04" / "train.json", "[]")
    assert benchmark.data_files([file], data_dir) == {
        "conll04/train.json": "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"}


def test_write_jsonl_is_atomic(tmp_path):
    """A write interrupted after some lines leaves the previous file whole (or no file), and no scratch file."""
    from nerre.example import Example

    path = write_jsonl([Example("a b")], tmp_path / "out.jsonl")
    before = path.read_bytes()
    assert read_jsonl(path)[0].text == "a b"

    def interrupted():
        yield Example("c d")
        yield Example("e f")
        raise KeyboardInterrupt  # Ctrl-C while the lines are being written

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(interrupted(), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    with pytest.raises(KeyboardInterrupt):
        write_jsonl(interrupted(), tmp_path / "new.jsonl")
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
