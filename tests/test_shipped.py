"""Adapters that ship inside the package: exported small (bf16, no tokenizer copy), loaded by name, with a card."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA
from safetensors.torch import load_file

from nerre import adapter as adapters
from nerre.cli import run
from nerre.errors import MissingPathError
from nerre.loaders import read_jsonl
from nerre.metrics import score_entities
from nerre.predict import Extractor

CARD = "# nerre adapter `tiny`\n\ncommand: `nerre fit ...`\n"


@pytest.fixture
def shipped(tiny_adapter, tmp_path, monkeypatch) -> Path:
    """The tiny adapter exported as if it shipped with nerre, under the name ``tiny``."""
    monkeypatch.setattr(adapters, "SHIPPED", tmp_path / "adapters")
    return adapters.export_adapter(tiny_adapter, tmp_path / "adapters" / "tiny", CARD)


def test_export_writes_bf16_weights_settings_and_card_without_the_tokenizer(shipped, tiny_adapter):
    assert sorted(p.name for p in shipped.iterdir()) == ["README.md", "adapter_config.json",
                                                         "adapter_model.safetensors", "nerre.json"]
    small, full = load_file(shipped / "adapter_model.safetensors"), load_file(tiny_adapter / "adapter_model.safetensors")
    assert small.keys() == full.keys() and all(t.dtype == torch.bfloat16 for t in small.values())
    for key, tensor in full.items():
        torch.testing.assert_close(small[key].float(), tensor, atol=0, rtol=1 / 128)  # bf16: 8 bits of mantissa
    settings = json.loads((shipped / "nerre.json").read_text())
    assert settings["tokenizer"] == settings["base_model"]  # named, not copied
    assert (shipped / "README.md").read_text() == CARD


def test_a_shipped_adapter_loads_by_name_and_predicts_like_the_original(shipped, tiny_adapter):
    assert adapters.shipped_adapters() == ["tiny"]
    gold = read_jsonl(TINY_DATA / "tiny.jsonl")
    by_name = [p.example for p in Extractor.load("tiny").predict(gold)]
    original = [p.example for p in Extractor.load(tiny_adapter).predict(gold)]
    assert score_entities(gold, by_name).micro.f1 == score_entities(gold, original).micro.f1 == 1.0


def test_loading_an_adapter_does_not_warn_about_peft_and_transformers(tiny_adapter):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapters.load_adapter(tiny_adapter)
    assert [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)] == []


def test_nerre_predict_takes_a_shipped_name(shipped, tmp_path):
    (tmp_path / "in.txt").write_text("John Smith works for Acme Corp in New York.\n")
    run(["predict", "--adapter", "tiny", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.jsonl")])
    (record,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert record["text"] == "John Smith works for Acme Corp in New York." and record["entities"]


def test_an_unknown_name_lists_the_shipped_adapters(shipped):
    with pytest.raises(MissingPathError, match=r"conll9: no such adapter folder, and no adapter of that name ships "
                                               r"with nerre \(shipped: tiny\)"):
        Extractor.load("conll9")


@pytest.mark.parametrize("name", adapters.shipped_adapters())
def test_each_shipped_adapter_is_small_complete_and_has_a_card(name):
    folder = adapters.SHIPPED / name
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10 * 2**20
    settings = adapters.read_settings(name)
    adapters.check_adapter_files(folder, tokenizer_saved=False)
    assert settings.tokenizer == settings.base_model
    assert all(t.dtype == torch.bfloat16 for t in load_file(folder / "adapter_model.safetensors").values())
    card = (folder / "README.md").read_text()
    assert re.search(r"command: `python benchmarks/run\.py .+`", card)
    assert re.search(r"commit: `[0-9a-f]{40}`", card)  # a committed run, not a dirty tree
    assert re.search(r"\| entities \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \|", card)


def test_a_spacy_pipeline_with_a_shipped_adapter_saves_and_reloads(shipped, tmp_path):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("nerre", config={"adapter": "tiny"})
    before = [(e.text, e.label_) for e in nlp("John Smith works for Acme Corp in New York.").ents]
    nlp.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "nerre" / "adapter_model.safetensors").is_file()
    after = [(e.text, e.label_) for e in spacy.load(tmp_path / "pipeline")("John Smith works for Acme Corp in New York.").ents]
    assert after == before and before
