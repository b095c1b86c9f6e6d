"""Training on several files (train + dev, the literature's protocol): ids stay unique, errors name the right
file, and a run without dev data saves the adapter of its last step."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml
from conftest import TINY_CONFIG, TINY_DATA, fit_args

from nerre.cli import run
from nerre.datamodule import ExtractionData
from nerre.errors import ConfigError, DataError
from nerre.schema import Schema


@pytest.fixture
def settings(tiny_model_dir, tmp_path) -> dict:
    data = yaml.safe_load(TINY_CONFIG.read_text())["data"]
    shutil.copy(TINY_DATA / "tiny.jsonl", tmp_path / "a.jsonl")
    shutil.copy(TINY_DATA / "tiny.jsonl", tmp_path / "b.jsonl")
    data.update(data_dir=str(tmp_path), model=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"),
                train=["a.jsonl", "b.jsonl"], val="a.jsonl", test="a.jsonl", schema=Schema(**data["schema"]))
    return data


def test_a_list_of_training_files_is_read_in_order_with_unique_ids(settings, tmp_path, caplog):
    data = ExtractionData(**settings)
    ids = [ex.id for ex in data.examples["train"]]
    assert ids[:4] == ["tiny-0", "tiny-1", "tiny-2", "tiny-3"] and ids[4:] == [f"b.jsonl:tiny-{i}" for i in range(4)]
    assert "b.jsonl: example ids repeat those of an earlier file" in caplog.text
    assert data.files["train"] == [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    assert data.paths["train"] == f"{tmp_path / 'a.jsonl'} + {tmp_path / 'b.jsonl'}"
    together = ExtractionData(**settings | {"train": "a.jsonl", "train_dev": True})
    assert len(together.examples["train"]) == 8 and "val" not in together.examples


def test_errors_name_the_file_that_holds_the_record(settings, tmp_path):
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    rows[2]["relations"][0]["label"] = "Kill"
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=r"b\.jsonl: example b\.jsonl:tiny-2 has relation label 'Kill'"):
        ExtractionData(**settings)
    rows[2]["relations"][0]["label"] = "Work_For"
    rows[2]["relations"][0]["head"], rows[2]["relations"][0]["tail"] = 0, 1  # Acme works for Bob Lee
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    schema = settings["schema"].to_dict()
    schema["relations"][0] |= {"head": ["PER"], "tail": ["ORG"]}
    with pytest.raises(DataError, match=r"b\.jsonl: record b\.jsonl:tiny-2: relation Work_For"):
        ExtractionData(**settings | {"schema": Schema(**schema)})


def test_train_dev_needs_dev_data(settings):
    with pytest.raises(ConfigError, match="data.train_dev trains on data.train and data.val together"):
        ExtractionData(**settings | {"val": None, "train_dev": True})


def test_without_dev_data_the_last_steps_adapter_is_saved(tiny_model_dir, tmp_path):
    run(fit_args(tiny_model_dir, tmp_path, "--data.train_dev", "true", "--trainer.max_steps", "3",
                 "--trainer.log_every_n_steps", "1"))
    (file,) = tmp_path.glob("runs/**/metrics.csv")
    rows = list(csv.DictReader(file.open()))
    assert not any(r.get("val/f1") for r in rows) and len([r for r in rows if r.get("train/loss")]) == 3
    (adapter,) = tmp_path.glob("runs/**/adapter")
    assert (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "nerre.json").read_text())["schema"]["relations"][0]["head"] == ["PER"]


def test_the_last_epochs_weights_are_averaged(tiny_model_dir, tmp_path):
    """Two epochs of two steps (train+dev: 8 examples, batches of 4): the averaged adapter is the mean of the
    weights at the two epoch ends, steps 2 and 4."""
    import torch
    from safetensors.torch import load_file

    run(fit_args(tiny_model_dir, tmp_path, "--data.train_dev", "true", "--trainer.max_steps", "4",
                 "--adapter.average_last", "2", "--step_checkpoint.every_n_train_steps", "1",
                 "--step_checkpoint.save_top_k", "-1"))
    (adapter,) = tmp_path.glob("runs/**/adapter")
    last = load_file(adapter / "adapter_model.safetensors")
    averaged = load_file(adapter.parent / "adapter_averaged" / "adapter_model.safetensors")
    (step2,) = tmp_path.glob("runs/**/checkpoints/latest-step=2.ckpt")
    earlier = {key.removeprefix("model.").replace(".default", ""): value
               for key, value in torch.load(step2, weights_only=False)["state_dict"].items()}
    assert last.keys() == averaged.keys() and set(last) <= set(earlier)
    assert any(not torch.equal(last[k], averaged[k]) for k in last)
    for key in last:
        torch.testing.assert_close(averaged[key], (last[key] + earlier[key]) / 2)
