"""Tiny in-memory tokenizer and causal LM for fast, offline tests (no download, no GGUF package).

``tiny_tokenizer`` is a byte-level BPE: it encodes any text (markup, newlines, non-ASCII) and
``decode(encode(x)) == x``. ``tiny_model`` is a randomly initialised 2-layer Gemma 3 text model
with final-logit softcapping on, like the real default. ``tiny_checkpoint`` saves both into a
folder that ``nerre.models.load_model`` / ``load_tokenizer`` accept.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning import Callback
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK]  # ids 0, 1, 2, 3 as in Gemma

DEFAULT_TEXTS = [
    "John Smith works for Acme Corp in New York.",
    "Aspirin can cause stomach bleeding in some patients.",
    "The model predicts entities and relations: <person> | <org> / work_for # end\n",
    "Marie Curie was born in Warsaw and worked in Paris.",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A small Jinja chat template, for tests of chat-template handling."""


def tiny_tokenizer(
    texts: Iterable[str] = DEFAULT_TEXTS, vocab_size: int = 300, add_bos: bool = False
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts``; pad/eos/bos/unk get ids 0-3.

    With ``add_bos=True`` encoding prepends ``<bos>`` (as Gemma does); then
    ``decode(..., skip_special_tokens=True)`` gives the text back.
    """
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, backend.token_to_id(BOS))]
        )
    else:
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, eos_token=EOS, bos_token=BOS, unk_token=UNK)


def tiny_config(tokenizer: PreTrainedTokenizerFast, **overrides: Any) -> Gemma3TextConfig:
    """A 2-layer, hidden-32 Gemma 3 text config sized to ``tokenizer`` (softcapping 30 on)."""
    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "max_position_embeddings": 512,
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "final_logit_softcapping": 30.0,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "tie_word_embeddings": True,
    }
    settings.update(overrides)
    return Gemma3TextConfig(**settings)


def tiny_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0, **overrides: Any) -> Gemma3ForCausalLM:
    """A randomly initialised tiny Gemma 3 causal LM in float32 (eval mode, seeded)."""
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(tiny_config(tokenizer, **overrides))
    return model.float().eval()


def tiny_checkpoint(folder: str | Path, texts: Iterable[str] = DEFAULT_TEXTS, **overrides: Any) -> Path:
    """Save a tiny tokenizer + model into ``folder`` (created) and return it."""
    folder = Path(folder)
    tokenizer = tiny_tokenizer(texts)
    tiny_model(tokenizer, **overrides).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder



class StopAt(Callback):
    """Raises ``KeyboardInterrupt`` before training step ``step``: Ctrl-C, on cue."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt
