"""Tiny in-memory tokenizer and causal LM for fast, offline tests (no download, no GGUF package).

``tiny_tokenizer`` is a byte-level BPE: it encodes any text (markup, newlines, non-ASCII) and
``decode(encode(x)) == x``. ``tiny_model`` is a randomly initialised 2-layer Gemma 3 text model
with final-logit softcapping on, like the real default. ``tiny_checkpoint`` saves both into a
folder that ``nerre.models.load_model`` / ``load_tokenizer`` accept. ``tiny_gguf`` writes a 2-layer
Llama as a Q4_1 GGUF file with a GPT-2 style tokenizer and a chat template, as SmolLM2's package ships it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning import Callback
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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


def tiny_llama(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised 2-layer Llama (no softcapping, no sliding window; builds its own causal mask), seeded."""
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def tiny_checkpoint(folder: str | Path, texts: Iterable[str] = DEFAULT_TEXTS, **overrides: Any) -> Path:
    """Save a tiny tokenizer + model into ``folder`` (created) and return it."""
    folder = Path(folder)
    tokenizer = tiny_tokenizer(texts)
    tiny_model(tokenizer, **overrides).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""SmolLM2's chat template without its default system turn."""


def tiny_gguf(path: str | Path, texts: Iterable[str] = DEFAULT_TEXTS, seed: int = 0) -> Path:
    """Write a random 2-layer Llama (hidden 32, tied embeddings) as a GGUF file at ``path``.

    Its 2-D weights are Q4_1-quantized and its tokenizer is ``tiny_tokenizer(texts)`` stored the way
    llama.cpp stores GPT-2 style tokenizers, with :data:`CHATML_TEMPLATE`; like SmolLM2-135M-Instruct,
    the pad token is the eos token.
    """
    import gguf
    import numpy as np

    tokenizer = tiny_tokenizer(texts)
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    hidden, feed_forward, layers, heads, kv_heads = 32, 64, 2, 2, 1
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(feed_forward)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    control, normal = gguf.TokenType.CONTROL, gguf.TokenType.NORMAL
    writer.add_token_types([control if token in SPECIAL_TOKENS else normal for token in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab[BOS])
    writer.add_eos_token_id(vocab[EOS])
    writer.add_pad_token_id(vocab[EOS])
    writer.add_unk_token_id(vocab[UNK])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)
    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int) -> None:
        data = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        if len(shape) == 1:  # norms stay float, as in llama.cpp's quantized files
            writer.add_tensor(name, data)
            return
        packed = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q4_1)
        writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=gguf.GGMLQuantizationType.Q4_1)

    tensor("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", hidden)
        tensor(f"blk.{i}.attn_q.weight", hidden, hidden)
        tensor(f"blk.{i}.attn_k.weight", hidden // heads * kv_heads, hidden)
        tensor(f"blk.{i}.attn_v.weight", hidden // heads * kv_heads, hidden)
        tensor(f"blk.{i}.attn_output.weight", hidden, hidden)
        tensor(f"blk.{i}.ffn_norm.weight", hidden)
        tensor(f"blk.{i}.ffn_gate.weight", feed_forward, hidden)
        tensor(f"blk.{i}.ffn_up.weight", feed_forward, hidden)
        tensor(f"blk.{i}.ffn_down.weight", hidden, feed_forward)
    tensor("output_norm.weight", hidden)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


class StopAt(Callback):
    """Raises ``KeyboardInterrupt`` before training step ``step``: Ctrl-C, on cue."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


TINY_SCHEMA = {
    "entities": [{"name": "PER", "display": "person"}, {"name": "ORG", "display": "organization"},
                 {"name": "LOC", "display": "location"}],
    "relations": [{"name": "Work_For", "display": "works for"}],
}
"""Labels of :func:`tiny_adapter`."""


def tiny_adapter(folder: str | Path, texts: Iterable[str] = DEFAULT_TEXTS, lora_seed: int = 1,
                 max_sequence_tokens: int = 2048) -> Path:
    """An untrained nerre adapter (random LoRA weights on a random tiny model, whose folder is
    ``folder/base``) in ``folder/adapter``: loads and predicts like a trained one, fast, for benchmarks of
    the machinery (memory, serving, profiles) rather than of the predictions. A small
    ``max_sequence_tokens`` leaves answers little budget, so the grammar completes them in few passes."""
    from peft import LoraConfig, get_peft_model

    from nerre.adapter import AdapterSettings, save_adapter

    folder = Path(folder)
    base = tiny_checkpoint(folder / "base", texts, initializer_range=0.5)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(base)
    torch.manual_seed(lora_seed)
    model = get_peft_model(Gemma3ForCausalLM.from_pretrained(base), LoraConfig(r=4, target_modules="all-linear",
                                                                                init_lora_weights=False))
    settings = AdapterSettings(base_model=str(base), formulation="tagged", schema=TINY_SCHEMA,
                             max_sequence_tokens=max_sequence_tokens)
    return save_adapter(model, tokenizer, settings, folder / "adapter")
