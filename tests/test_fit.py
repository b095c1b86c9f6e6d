"""`nerre fit` end to end on a tiny random model: learning, masking, resuming, bad configs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from nerre.adapter import load_adapter
from nerre.cli import run
from nerre.datamodule import IGNORE, ExtractionData
from nerre.formulation import TaggedText
from nerre.generation import generate_greedy
from nerre.loaders import read_jsonl
from nerre.metrics import score_entities
from nerre.prompt import PromptBuilder
from nerre.schema import Schema

from tiny import tiny_model, tiny_tokenizer

TESTS = Path(__file__).parent
CONFIG = TESTS / "conf" / "tiny.yaml"
DATA = TESTS / "data"


def tiny_schema() -> Schema:
    return Schema(**yaml.safe_load(CONFIG.read_text())["data"]["schema"])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A random tiny Gemma 3 whose tokenizer was trained on the prompts and targets of the tiny data."""
    examples = read_jsonl(DATA / "tiny.jsonl")
    formulation = TaggedText(tiny_schema())
    prompts = PromptBuilder(formulation)
    texts = [prompts.prompt(ex.text) + formulation.encode(ex) for ex in examples] * 4
    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = tiny_tokenizer(texts, vocab_size=2000)
    tiny_model(tokenizer, initializer_range=0.5).save_pretrained(folder)  # logits large enough to fit
    tokenizer.save_pretrained(folder)
    return folder


def fit_args(model_dir: Path, root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(CONFIG), "--model.init_args.model", str(model_dir),
            "--data.data_dir", str(DATA), "--data.cache_dir", str(root / "cache"),
            "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root / "runs"),
            *extra]


def metrics(root: Path) -> list[dict[str, str]]:
    (file,) = root.glob("runs/**/metrics.csv")
    return list(csv.DictReader(file.open()))


def test_tiny_model_learns_the_examples_through_the_fit_path(model_dir, tmp_path):
    run(fit_args(model_dir, tmp_path))
    rows = metrics(tmp_path)
    f1 = [float(r["val/entity_f1"]) for r in rows if r.get("val/entity_f1")]
    rel = [float(r["val/relation_f1"]) for r in rows if r.get("val/relation_f1")]
    assert f1[-1] == 1.0 and rel[-1] == 1.0
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses[-1] < losses[0] / 10

    # the run folder holds the resolved config and the adapter with its settings
    (run_dir,) = {p.parent for p in tmp_path.glob("runs/**/config.yaml")}
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["seed_everything"] == 0 and config["model"]["init_args"]["model"] == str(model_dir)
    settings = json.loads((run_dir / "adapter" / "nerre.json").read_text())
    assert settings["base_model"] == str(model_dir) and settings["formulation"] == "tagged"

    # the adapter reloads on its own and extracts the same entities
    model, tokenizer, loaded = load_adapter(run_dir / "adapter")
    formulation, prompts = loaded.build()
    gold = read_jsonl(DATA / "tiny.jsonl")
    predictions = []
    for ex in gold:
        ids = tokenizer(prompts.prompt(ex.text), return_tensors="pt")
        (out,) = generate_greedy(model, tokenizer, ids["input_ids"], ids["attention_mask"], 96)
        predictions.append(formulation.decode(ex.text, out).as_example(ex))
    assert score_entities(gold, predictions).micro.f1 == 1.0
