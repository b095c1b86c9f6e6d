"""Saving a trained adapter with everything needed to reload it for prediction, and loading it.

An adapter is a folder (``nerre fit`` writes the run folder's ``adapter/``) or the name of one that
ships inside the package (``nerre/adapters/<name>/``, see :func:`shipped_adapters`): LoRA weights in
bf16, settings and a card, with the base model's tokenizer named instead of copied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from nerre.atomic import atomic_folder, write_text
from nerre.errors import AdapterError, MissingPathError, NerreError
from nerre.example import Example
from nerre.formulation import Formulation, get_formulation
from nerre.loaders.textfile import json_error
from nerre.models import load_model, load_tokenizer, peft_wrapping, resolve_model
from nerre.prompt import PromptBuilder, PromptSettings
from nerre.schema import Schema

SETTINGS_FILE = "nerre.json"
SHIPPED = Path(__file__).resolve().parent / "adapters"
"""Where the adapters that ship with nerre live, one folder per name."""
WEIGHTS_FILES = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
#: the ``DecodeOptions`` an adapter may carry tuned values of (``AdapterSettings.decoding``)
DECODING_KNOBS = ("entity_bias", "relation_bias", "min_entity_score", "min_relation_score")


@dataclass
class AdapterSettings:
    """What ``nerre.json`` beside an adapter records.

    Args:
        base_model: the base model name or folder the adapter was trained on.
        formulation: ``tagged``, ``json`` or ``bio``.
        schema: entity and relation labels.
        prompt: prompt settings.
        shots: few-shot examples shown in the prompt.
        max_sequence_tokens: the length of the training sequences (prompt + answer tokens).
        tokenizer: None when the tokenizer is saved beside the weights (``nerre fit`` saves it); else the
            model whose tokenizer to load (shipped adapters name their base model's, to stay small).
        score_temperature: the temperature of the decoder's score softmax (``DecodeOptions.temperature``),
            fitted on dev by ``benchmarks/calibration.py --save``; 1.0 (not written) when never fitted.
        decoding: the decoding knobs constrained prediction uses unless told otherwise (``entity_bias``,
            ``relation_bias``, ``min_entity_score``, ``min_relation_score`` of ``DecodeOptions``), chosen on dev
            by ``benchmarks/tune_decoding.py --save``; empty (not written) when never tuned.
    """

    base_model: str
    formulation: str
    schema: dict[str, Any]
    prompt: dict[str, Any] = field(default_factory=dict)
    shots: list[dict[str, Any]] = field(default_factory=list)
    max_sequence_tokens: int = 512
    tokenizer: str | None = None
    score_temperature: float = 1.0
    decoding: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.decoding) - set(DECODING_KNOBS))
        if unknown:
            raise ValueError(f"decoding: unknown knob(s) {', '.join(unknown)}; the knobs are {', '.join(DECODING_KNOBS)}")
        self.decoding = {k: float(v) for k, v in self.decoding.items()}

    def to_json(self) -> str:
        """The contents of ``nerre.json`` (``score_temperature`` only once fitted, ``decoding`` once tuned)."""
        unset = {"score_temperature": 1.0, "decoding": {}}
        saved = {k: v for k, v in self.__dict__.items() if k not in unset or v != unset[k]}
        return json.dumps(saved, indent=2, ensure_ascii=False) + "\n"

    def build(self) -> tuple[Formulation, PromptBuilder]:
        """The formulation and prompt builder these settings describe."""
        formulation = get_formulation(self.formulation, Schema(**self.schema))
        shots = [Example.from_dict(x) for x in self.shots]
        return formulation, PromptBuilder(formulation, PromptSettings(**self.prompt), shots)


def save_adapter(model: Any, tokenizer: Any, settings: AdapterSettings, path: str | Path) -> Path:
    """Write the adapter weights (``save_pretrained``), the tokenizer and ``nerre.json`` to ``path``.

    The folder is written beside ``path`` and renamed into place when complete, with ordinary permissions:
    an interrupted save leaves the previous adapter (or none), never a half-written one.
    """
    path = Path(path)
    with atomic_folder(path) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        (scratch / SETTINGS_FILE).write_text(settings.to_json())
    return path


def shipped_adapters() -> list[str]:
    """The names of the adapters that ship with nerre (``nerre predict --adapter NAME``)."""
    return sorted(p.name for p in SHIPPED.iterdir() if (p / SETTINGS_FILE).is_file()) if SHIPPED.is_dir() else []


def resolve_adapter(adapter: str | Path) -> Path:
    """The folder of ``adapter``: a path to an adapter folder, or the name of a shipped adapter.

    Raises:
        nerre.errors.MissingPathError: when it is neither, listing the shipped names.
    """
    path = Path(adapter).expanduser()
    if path.exists() or str(adapter) not in shipped_adapters():
        if not path.exists() and len(path.parts) == 1:
            names = ", ".join(shipped_adapters()) or "none"
            raise MissingPathError(f"{adapter}: no such adapter folder, and no adapter of that name ships with nerre "
                                   f"(shipped: {names}); pass the folder `nerre fit` wrote (the run folder's adapter/)")
        return path
    return SHIPPED / str(adapter)


def export_adapter(adapter: str | Path, target: str | Path, card: str) -> Path:
    """Write a small copy of ``adapter`` to ``target``: the LoRA weights in bf16, its settings naming the base
    model's tokenizer instead of a copy of it, and ``card`` as README.md (how to ship or share an adapter).

    Raises:
        nerre.errors.NerreError: when ``adapter`` is not a complete nerre adapter.
    """
    from safetensors.torch import load_file, save_file

    source = resolve_adapter(adapter)
    settings = read_settings(source)
    check_adapter_files(source)
    weights = source / WEIGHTS_FILES[0]
    if not weights.is_file():
        raise AdapterError(source, f"export needs {WEIGHTS_FILES[0]}")
    settings.tokenizer = settings.tokenizer or settings.base_model
    with atomic_folder(Path(target)) as scratch:
        tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(weights)).items()}
        save_file(tensors, str(scratch / WEIGHTS_FILES[0]), metadata={"format": "pt"})
        (scratch / "adapter_config.json").write_bytes((source / "adapter_config.json").read_bytes())
        (scratch / SETTINGS_FILE).write_text(settings.to_json())
        (scratch / "README.md").write_text(card)
    return Path(target)


def read_settings(path: str | Path) -> AdapterSettings:
    """The settings saved beside an adapter; a clear error when ``path`` is not a nerre adapter.

    Raises:
        nerre.errors.MissingPathError: when ``path`` is no folder or has no ``nerre.json``.
        nerre.errors.AdapterError: when ``nerre.json`` is damaged.
    """
    path = resolve_adapter(path)
    if not path.is_dir():
        what = "is a file, not an adapter folder" if path.exists() else "adapter folder not found"
        raise MissingPathError(f"{path}: {what}; pass the folder `nerre fit` wrote (the run folder's adapter/)")
    file = path / SETTINGS_FILE
    if not file.is_file():
        raise MissingPathError(f"{path}: no {SETTINGS_FILE} here, so this is not an adapter written by `nerre fit`")
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
        if isinstance(saved, dict) and "max_length" in saved:  # adapters saved before max_length was renamed
            saved["max_sequence_tokens"] = saved.pop("max_length")
        settings = AdapterSettings(**saved)
        settings.build()  # the labels, formulation and prompt settings must make sense
    except (ValueError, TypeError, RecursionError) as err:
        detail = json_error(err) if isinstance(err, (json.JSONDecodeError, RecursionError)) else _first_line(err)
        raise AdapterError(path, f"{SETTINGS_FILE} is damaged ({detail}); copy it again from the run that "
                                 "trained the adapter") from None
    return settings


def update_settings(path: str | Path, **changes: Any) -> Path:
    """Rewrite the ``nerre.json`` of the adapter at ``path`` with these fields changed (what is fitted or tuned
    on dev after training: ``score_temperature``, ``decoding``); the file written."""
    folder = resolve_adapter(path)
    return write_text(folder / SETTINGS_FILE, replace(read_settings(folder), **changes).to_json())


def check_adapter_files(path: str | Path, tokenizer_saved: bool = True) -> None:
    """Fail early, before any model loads, when the adapter folder lacks or has damaged files.

    Args:
        path: the adapter folder.
        tokenizer_saved: whether the tokenizer must be in the folder (not when the settings name one).

    Raises:
        nerre.errors.AdapterError: naming the file and what to do.
    """
    path = Path(path)
    config = path / "adapter_config.json"
    if not config.is_file():
        raise AdapterError(path, "no adapter_config.json here; the adapter is incomplete: copy the whole adapter "
                                 "folder that `nerre fit` wrote")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:
        raise AdapterError(path, f"adapter_config.json is damaged ({_first_line(err)}); copy the adapter folder "
                                 "again") from None
    weights = [path / name for name in WEIGHTS_FILES if (path / name).is_file()]
    if not weights:
        raise AdapterError(path, f"no adapter weights ({' or '.join(WEIGHTS_FILES)}) here; the adapter is "
                                 "incomplete: copy the whole adapter folder that `nerre fit` wrote")
    if weights[0].suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(weights[0]), framework="pt") as f:
                f.keys()
        except Exception as err:  # SafetensorError (and OSError) for a truncated or damaged file
            raise AdapterError(path, f"{weights[0].name} is damaged ({_first_line(err)}; truncated?); copy the "
                                     "adapter folder again, or save the adapter again from a checkpoint") from None
    if tokenizer_saved and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise AdapterError(path, f"no tokenizer files ({', '.join(TOKENIZER_FILES)}) here; copy the whole adapter "
                                 "folder that `nerre fit` wrote (it saves the tokenizer beside the weights)")


def load_adapter(path: str | Path, base_model: str | None = None, dtype: torch.dtype = torch.float32):
    """Load ``(model, tokenizer, settings)`` from an adapter folder written by ``nerre fit``.

    Args:
        path: the adapter folder, or the name of a shipped adapter (:func:`shipped_adapters`).
        base_model: override the base model recorded in ``nerre.json`` (e.g. a local copy).
        dtype: weight dtype of the base model.

    Raises:
        nerre.errors.NerreError: for a missing, incomplete or damaged adapter, or one that does not fit
            the base model; the adapter's files are checked before the base model loads.
    """
    from peft import PeftModel

    path = resolve_adapter(path)
    settings = read_settings(path)
    check_adapter_files(path, tokenizer_saved=settings.tokenizer is None)
    base_name = base_model or settings.base_model
    try:
        tokenizer = load_tokenizer(str(path) if settings.tokenizer is None else resolve_model(settings.tokenizer))
    except NerreError:
        raise
    except Exception as err:  # transformers raises many kinds for unreadable tokenizer files
        raise AdapterError(path, f"cannot load the tokenizer saved with the adapter ({_first_line(err)}); copy "
                                 "the adapter folder again") from None
    base = load_model(resolve_model(base_name), dtype=dtype)
    config = json.loads((path / "adapter_config.json").read_text())
    try:
        with peft_wrapping():
            model = PeftModel.from_pretrained(base, path)
    except (RuntimeError, ValueError, KeyError, OSError) as err:
        raise AdapterError(
            path,
            f"the adapter does not fit base model {base_name!r} (it was trained on {settings.base_model!r}, "
            f"peft records {config.get('base_model_name_or_path')!r}): {_first_line(err)}; pass the base model "
            "it was trained on with --base_model",
        ) from None
    model.eval()
    return model, tokenizer, settings


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
