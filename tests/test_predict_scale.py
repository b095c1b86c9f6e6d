"""Prediction at scale: streamed inputs, resuming an interrupted run, the merged adapter, several processes."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA, scores_of, unscored

from nerre.errors import ConfigError, DataError
from nerre.example import Example
from nerre.loaders import detect_format, read_conll, read_jsonl, stream_examples
from nerre.predict import Extractor, iter_inputs, predict

SENTENCES = ["John Smith works for Acme .", "Mary Jones lives in Paris .", "Acme hired Bob Lee in Rome .",
             "Nothing happened today .", "", "Bob Lee works for Acme in Paris .", "Mary Jones lives in Rome ."]


def raw_input(folder: Path, lines: int) -> Path:
    path = folder / "input.txt"
    path.write_text("".join(SENTENCES[i % len(SENTENCES)] + "\n" for i in range(lines)))
    return path


@pytest.fixture(scope="module")
def extractor(tiny_adapter) -> Extractor:
    return Extractor.load(tiny_adapter)


def test_predict_pulls_its_input_as_it_goes(extractor):
    pulled = []

    def texts():
        for n in itertools.count():
            pulled.append(n)
            yield Example(SENTENCES[n % 4], id=str(n))

    predictions = extractor.predict(texts())
    first = next(predictions)
    assert first.example.id == "0" and len(first.example.entities) == 2
    assert len(pulled) <= 8 * extractor.batch_size + 1  # one chunk of windows, not the endless input


def test_text_jsonl_and_conll_inputs_are_read_one_example_at_a_time(tmp_path):
    """A broken record at the end of a file is met only when reading gets there: nothing before it waited."""
    text = raw_input(tmp_path, 3)
    text.write_bytes(text.read_bytes() + b"\xff broken\n")
    lines = iter_inputs(text, "text")  # (detection would read the start of the file, the broken line too)
    assert [next(lines).text for _ in range(3)] == SENTENCES[:3]
    with pytest.raises(DataError, match=r"input.txt:4: not UTF-8 text \(byte 0xff at column 1\)"):
        next(lines)

    jsonl = tmp_path / "gold.jsonl"
    jsonl.write_text((TINY_DATA / "tiny.jsonl").read_text() + "{broken\n")
    records = stream_examples(jsonl, "jsonl")
    assert [next(records).id for _ in range(4)] == ["tiny-0", "tiny-1", "tiny-2", "tiny-3"]
    with pytest.raises(DataError, match="gold.jsonl:5: not valid JSON"):
        next(records)
    jsonl.write_text((TINY_DATA / "tiny.jsonl").read_text())
    assert [ex.same_annotations(g) for ex, g in zip(stream_examples(jsonl, "jsonl"), read_jsonl(jsonl))] == [True] * 4

    conll = tmp_path / "gold.conll"
    conll.write_text("John B-PER\nSmith I-PER\n\nParis B-LOC\n. X O\n\nRome B-LOC\n")
    sentences = stream_examples(conll, "conll", {"scheme": "iob2"})
    assert next(sentences).text == "John Smith"
    with pytest.raises(DataError, match="gold.conll:5: expected 2 columns"):
        next(sentences)
    conll.write_text("John B-PER\nSmith I-PER\n\nParis B-LOC\n. O\n\nRome I-LOC\n")  # IOB1: told from the whole file
    assert [ex.entities for ex in stream_examples(conll, "conll")] == [ex.entities for ex in read_conll(conll)]
    assert [len(ex.entities) for ex in read_conll(conll)] == [1, 1, 1]


def test_format_detection_reads_only_the_start_of_a_file(tmp_path):
    big = tmp_path / "big.jsonl"
    record = json.dumps({"text": "John Smith works for Acme .", "entities": [{"start": 0, "end": 10, "label": "PER"}]})
    big.write_text((record + "\n") * 20_000 + "{broken\n")  # 1.4 MB: the broken end is past what detection reads
    assert detect_format(big) == "jsonl"
    listed = tmp_path / "big.json"
    listed.write_text("[" + ",\n".join([record] * 20_000) + ", {broken")
    assert detect_format(listed) == "json"
    columns = tmp_path / "big.txt"
    columns.write_text("John B-PER\nworks O\n\n" * 100_000 + "a line of prose at the end\n")
    assert detect_format(columns) == "conll"


def test_an_interrupted_run_resumes_to_the_same_file(tiny_adapter, tmp_path, monkeypatch, capsys):
    source = raw_input(tmp_path, 30)
    whole = tmp_path / "whole.jsonl"
    summary = predict(adapter=str(tiny_adapter), input=str(source), output=str(whole), batch_size=1)
    assert summary["examples"] == 30

    calls = {"n": 0}
    original = Extractor.generate

    def interrupted(self, windows):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the third chunk of 8 texts
        return original(self, windows)

    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(Extractor, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict(adapter=str(tiny_adapter), input=str(source), output=str(out), batch_size=1)
    monkeypatch.setattr(Extractor, "generate", original)
    partial = tmp_path / "out.jsonl.partial"
    kept = 18  # two chunks of 8 windows: 16 texts and the 2 empty lines among them (no window)
    assert not out.exists() and len(partial.read_text().splitlines()) == kept
    with partial.open("a") as f:  # a kill in the middle of a write leaves half a record
        f.write(whole.read_text().splitlines()[kept][:25])

    done = {"n": 0}

    def counted(self, windows):
        done["n"] += len(windows)
        return original(self, windows)

    monkeypatch.setattr(Extractor, "generate", counted)
    summary = predict(adapter=str(tiny_adapter), input=str(source), output=str(out), batch_size=1, resume=True)
    assert out.read_bytes() == whole.read_bytes() and not partial.exists()
    assert summary["examples"] == 30 and summary["resumed after"] == kept
    assert done["n"] == sum(1 for line in source.read_text().splitlines()[kept:] if line)  # only the rest predicted
    assert summary["entities"] == sum(len(json.loads(line)["entities"]) for line in whole.read_text().splitlines())

    other = tmp_path / "other.txt"
    other.write_text("Mary Jones lives in Rome .\n" * 30)
    partial.write_bytes(b"".join(whole.read_bytes().splitlines(keepends=True)[:5]))
    with pytest.raises(DataError, match=r"out.jsonl.partial:1: this record is not the prediction of the input"):
        predict(adapter=str(tiny_adapter), input=str(other), output=str(out), resume=True)


SLOW_PREDICT = """
import sys, time
from nerre.predict import Extractor
generate = Extractor.generate
def slow(self, windows):
    time.sleep(0.5)  # time to be killed in the middle
    return generate(self, windows)
Extractor.generate = slow
from nerre.cli import main
main(sys.argv[1:])
"""


def test_a_killed_process_resumes_to_the_same_file(tiny_adapter, tmp_path):
    source = raw_input(tmp_path, 40)
    whole = tmp_path / "whole.jsonl"
    predict(adapter=str(tiny_adapter), input=str(source), output=str(whole), batch_size=1)
    out, partial = tmp_path / "out.jsonl", tmp_path / "out.jsonl.partial"
    args = ["predict", "--adapter", str(tiny_adapter), "--input", str(source), "--output", str(out), "--batch_size", "1"]
    process = subprocess.Popen([sys.executable, "-c", SLOW_PREDICT, *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (partial.is_file() and partial.read_bytes().count(b"\n") >= 8):
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
            time.sleep(0.05)
    finally:
        process.kill()  # SIGKILL: no handler runs
        process.wait(timeout=60)
    assert not out.exists() and partial.read_bytes().count(b"\n") < 40
    summary = predict(adapter=str(tiny_adapter), input=str(source), output=str(out), batch_size=1, resume=True)
    assert summary["resumed after"] >= 8 and out.read_bytes() == whole.read_bytes() and not partial.exists()


def test_the_merged_adapter_predicts_the_same(tiny_adapter):
    merged = Extractor.load(tiny_adapter, merge=True, precision="32-true")
    assert not hasattr(merged.model, "peft_config")  # a plain model: the LoRA weights are in the base weights
    examples = [Example(text) for text in SENTENCES]
    unmerged = Extractor.load(tiny_adapter, precision="32-true")
    got, want = [p.to_dict() for p in merged.predict(examples)], [p.to_dict() for p in unmerged.predict(examples)]
    assert unscored(got) == unscored(want)
    assert scores_of(got) == pytest.approx(scores_of(want), abs=1e-3)


def test_several_processes_write_the_same_file_as_one(tiny_adapter, tmp_path):
    """Two CPU ranks (gloo) through Lightning's Trainer.predict; in a subprocess, so a hang fails the test."""
    source = raw_input(tmp_path, 40)  # batch 1: chunks of 8 texts, 5 chunks dealt out to 2 ranks
    one = tmp_path / "one.jsonl"
    predict(adapter=str(tiny_adapter), input=str(source), output=str(one), batch_size=1)
    two = tmp_path / "two.jsonl"
    args = ["predict", "--adapter", str(tiny_adapter), "--input", str(source), "--output", str(two),
            "--batch_size", "1", "--devices", "2", "--strategy", "ddp_spawn", "--accelerator", "cpu"]
    done = subprocess.run([sys.executable, "-m", "nerre.cli", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["processes"] == 2 and summary["examples"] == 40
    assert two.read_bytes() == one.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.txt", "one.jsonl", "two.jsonl"]  # scratch removed


def test_rank_files_merge_in_input_order(tmp_path):
    from nerre.predict_ddp import merge_ranks

    (tmp_path / "rank0.tsv").write_text('0\t{"n": 0}\n2\t{"n": 2}\n4\t{"n": 4}\n')
    (tmp_path / "rank1.tsv").write_text('1\t{"n": 1}\n3\t{"n": 3}\n4\t{"n": 4}\n')  # 4 twice: a padded sampler
    files = [tmp_path / "rank0.tsv", tmp_path / "rank1.tsv"]
    merge_ranks(files, tmp_path / "out.jsonl", 5)
    assert (tmp_path / "out.jsonl").read_text() == "".join(f'{{"n": {n}}}\n' for n in range(5))
    with pytest.raises(RuntimeError, match="the ranks predicted texts 0 to 4 of 6"):
        merge_ranks(files, tmp_path / "six.jsonl", 6)
    assert not (tmp_path / "six.jsonl").exists()


def test_precision_picks_the_weight_dtype(tiny_adapter, monkeypatch):
    """bf16-true casts the (merged) weights to bfloat16 and still decodes faithfully; auto follows the hardware."""
    import nerre.models

    bf16 = Extractor.load(tiny_adapter, merge=True, precision="bf16-true")
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    predictions = list(bf16.predict([Example(text) for text in SENTENCES]))
    assert [p.example.text for p in predictions] == SENTENCES  # the grammar holds whatever the rounding
    assert all(0 <= e.start < e.end <= len(p.example.text) for p in predictions for e in p.example.entities)
    monkeypatch.setattr(nerre.models, "cpu_has_native_bf16", lambda: False)
    assert nerre.models.inference_dtype("auto") == torch.float32  # emulated bf16 would be slower
    monkeypatch.setattr(nerre.models, "cpu_has_native_bf16", lambda: True)
    assert nerre.models.inference_dtype("auto") == torch.bfloat16
    assert nerre.models.inference_dtype("32") == torch.float32
    with pytest.raises(ConfigError, match="precision 'fp16'.*auto, 32-true, bf16-true"):
        Extractor.load(tiny_adapter, precision="fp16")


def test_the_old_dtype_argument_still_works_with_a_notice(tiny_adapter, caplog):
    with caplog.at_level("WARNING", logger="nerre.predict"):
        old = Extractor.load(tiny_adapter, dtype=torch.bfloat16)
    assert {p.dtype for p in old.model.parameters()} == {torch.bfloat16}
    assert "renamed precision=" in caplog.text
    assert {p.dtype for p in Extractor.load(tiny_adapter).model.parameters()} == {torch.float32}  # the default
