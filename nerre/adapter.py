"""Saving a trained adapter with everything needed to reload it for prediction, and loading it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nerre.example import Example
from nerre.formulation import Formulation, get_formulation
from nerre.models import load_model, load_tokenizer, resolve_model
from nerre.prompt import PromptBuilder, PromptSettings
from nerre.schema import Schema

SETTINGS_FILE = "nerre.json"


@dataclass
class AdapterSettings:
    """What ``nerre.json`` beside an adapter records.

    Args:
        base_model: the base model name or folder the adapter was trained on.
        formulation: ``tagged``, ``json`` or ``bio``.
        schema: entity and relation labels.
        prompt: prompt settings.
        shots: few-shot examples shown in the prompt.
        max_length: the training window in tokens.
    """

    base_model: str
    formulation: str
    schema: dict[str, Any]
    prompt: dict[str, Any] = field(default_factory=dict)
    shots: list[dict[str, Any]] = field(default_factory=list)
    max_length: int = 512

    def build(self) -> tuple[Formulation, PromptBuilder]:
        """The formulation and prompt builder these settings describe."""
        formulation = get_formulation(self.formulation, Schema(**self.schema))
        shots = [Example.from_dict(x) for x in self.shots]
        return formulation, PromptBuilder(formulation, PromptSettings(**self.prompt), shots)


def save_adapter(model: Any, tokenizer: Any, settings: AdapterSettings, path: str | Path) -> Path:
    """Write the adapter weights (``save_pretrained``), the tokenizer and ``nerre.json`` to ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / SETTINGS_FILE).write_text(json.dumps(settings.__dict__, indent=2, ensure_ascii=False) + "\n")
    return path


def read_settings(path: str | Path) -> AdapterSettings:
    """The settings saved beside an adapter; a clear error when ``path`` is not a nerre adapter."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: adapter folder not found; pass the folder `nerre fit` wrote (…/adapter)")
    file = path / SETTINGS_FILE
    if not file.exists():
        raise FileNotFoundError(f"{path}: no {SETTINGS_FILE} here, so this is not an adapter written by `nerre fit`")
    return AdapterSettings(**json.loads(file.read_text()))


def load_adapter(path: str | Path, base_model: str | None = None, dtype: torch.dtype = torch.float32):
    """Load ``(model, tokenizer, settings)`` from an adapter folder written by ``nerre fit``.

    Args:
        path: the adapter folder.
        base_model: override the base model recorded in ``nerre.json`` (e.g. a local copy).
        dtype: weight dtype of the base model.
    """
    from peft import PeftModel

    path = Path(path)
    settings = read_settings(path)
    base_name = base_model or settings.base_model
    base = load_model(resolve_model(base_name), dtype=dtype)
    config = json.loads((path / "adapter_config.json").read_text()) if (path / "adapter_config.json").exists() else {}
    try:
        model = PeftModel.from_pretrained(base, path)
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(
            f"{path}: the adapter does not fit base model {base_name!r} (it was trained on "
            f"{settings.base_model!r}, peft records {config.get('base_model_name_or_path')!r}): {err}"
        ) from None
    model.eval()
    tokenizer = load_tokenizer(str(path))
    return model, tokenizer, settings
