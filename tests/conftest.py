"""Shared fixtures. Real corpora live in ../shared/data beside the repository (or $NERRE_DATA_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = Path(os.environ.get("NERRE_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with conll2003/, conll04/, ade/ and scierc/. Missing data is an error, not a skip."""
    if not (DATA_DIR / "conll2003" / "test.txt").exists():
        raise RuntimeError(f"corpora not found under {DATA_DIR}; set NERRE_DATA_DIR to the shared data folder")
    return DATA_DIR
