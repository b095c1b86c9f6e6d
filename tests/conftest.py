"""Shared fixtures. Real corpora live in ../shared/data beside the repository (or $NERRE_DATA_DIR)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nerre.prediction_file import unscored  # noqa: F401  (tests import it from here)

DATA_DIR = Path(os.environ.get("NERRE_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with conll2003/, conll04/, ade/ and scierc/. Missing data is an error, not a skip."""
    if not (DATA_DIR / "conll2003" / "test.txt").exists():
        raise RuntimeError(f"corpora not found under {DATA_DIR}; set NERRE_DATA_DIR to the shared data folder")
    return DATA_DIR


TESTS = Path(__file__).resolve().parent
TINY_CONFIG = TESTS / "conf" / "tiny.yaml"
TINY_DATA = TESTS / "data"


def tiny_schema():
    """The labels of tests/conf/tiny.yaml."""
    import yaml

    from nerre.schema import Schema

    return Schema(**yaml.safe_load(TINY_CONFIG.read_text())["data"]["schema"])


def fit_args(model_dir: Path, root: Path, *extra: str) -> list[str]:
    """`nerre fit` arguments for the tiny config, writing everything under ``root``."""
    return ["fit", "--config", str(TINY_CONFIG), "--model.init_args.model", str(model_dir),
            "--data.data_dir", str(TINY_DATA), "--data.cache_dir", str(root / "cache"),
            "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root / "runs"),
            *extra]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random tiny Gemma 3 whose tokenizer was trained on the prompts and targets of the tiny data."""
    from tiny import tiny_model, tiny_tokenizer

    from nerre.formulation import TaggedText
    from nerre.loaders import read_jsonl
    from nerre.prompt import PromptBuilder

    examples = read_jsonl(TINY_DATA / "tiny.jsonl")
    formulation = TaggedText(tiny_schema())
    prompts = PromptBuilder(formulation)
    texts = [prompts.prompt(ex.text) + formulation.encode(ex) for ex in examples] * 4
    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = tiny_tokenizer(texts, vocab_size=2000)
    tiny_model(tokenizer, initializer_range=0.5).save_pretrained(folder)  # logits large enough to fit
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tiny_model_dir, tmp_path_factory) -> Path:
    """The root folder of one `nerre fit` run of the tiny config (trained once per test session)."""
    from nerre.cli import run

    root = tmp_path_factory.mktemp("tiny-run")
    run(fit_args(tiny_model_dir, root))
    return root


@pytest.fixture(scope="session")
def tiny_adapter(tiny_run) -> Path:
    """The adapter folder that the tiny run saved."""
    (adapter,) = tiny_run.glob("runs/**/adapter")
    return adapter


def scores_of(record: Any) -> list[float]:
    """Every ``score`` in a prediction record, in order."""
    if isinstance(record, list):
        return [s for r in record for s in scores_of(r)]
    if isinstance(record, dict):
        return ([record["score"]] if "score" in record else []) + [s for v in record.values() for s in scores_of(v)]
    return []
