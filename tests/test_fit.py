"""`nerre fit` end to end on a tiny random model: learning, masking, resuming, bad configs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_CONFIG as CONFIG
from conftest import TINY_DATA as DATA
from conftest import fit_args, tiny_schema

from nerre.cli import run
from nerre.datamodule import IGNORE, ExtractionData
from nerre.errors import ConfigError
from nerre.loaders import read_jsonl
from nerre.metrics import score_entities
from nerre.predict import Extractor


@pytest.fixture
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir


def metrics(root: Path) -> list[dict[str, str]]:
    (file,) = root.glob("runs/**/metrics.csv")
    return list(csv.DictReader(file.open()))


def test_tiny_model_learns_the_examples_through_the_fit_path(model_dir, tiny_run):
    tmp_path = tiny_run
    rows = metrics(tmp_path)
    f1 = [float(r["val/entity_f1"]) for r in rows if r.get("val/entity_f1")]
    rel = [float(r["val/relation_f1"]) for r in rows if r.get("val/relation_f1")]
    assert f1[-1] == 1.0 and rel[-1] == 1.0
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses[-1] < losses[0] / 10

    # the run folder holds the resolved config and the adapter with its settings
    (run_dir,) = {p.parent for p in tmp_path.glob("runs/**/config.yaml")}
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["seed_everything"] == 0 and config["model"]["init_args"]["model"] == str(model_dir)
    settings = json.loads((run_dir / "adapter" / "nerre.json").read_text())
    assert settings["base_model"] == str(model_dir) and settings["formulation"] == "tagged"

    # the adapter reloads on its own and extracts the same entities
    extractor = Extractor.load(run_dir / "adapter")
    gold = read_jsonl(DATA / "tiny.jsonl")
    predictions = [p.example for p in extractor.predict(gold)]
    assert score_entities(gold, predictions).micro.f1 == 1.0


def tiny_data(model_dir: Path, root: Path, **overrides) -> ExtractionData:
    settings = yaml.safe_load(CONFIG.read_text())["data"]
    settings.update(schema=tiny_schema(), data_dir=str(DATA), model=str(model_dir), cache_dir=str(root / "cache"))
    settings.update(overrides)
    return ExtractionData(**settings)


@pytest.mark.parametrize("loss_on", ["answer", "all"])
def test_labels_mask_exactly_the_prompt_token_by_token(model_dir, tmp_path, loss_on):
    data = tiny_data(model_dir, tmp_path, loss_on=loss_on)
    tokenizer = data.tokenizer
    rows = data.tokenized("train")
    assert len(rows) == 4 and data.truncated["train"] == 0
    for example, row in zip(data.examples["train"], rows):
        prompt = tokenizer(data.prompts.prompt(example.text))["input_ids"]
        answer = tokenizer(data.formulation.encode(example), add_special_tokens=False)["input_ids"]
        assert row["input_ids"] == prompt + answer + [tokenizer.eos_token_id]
        assert row["prompt_length"] == len(prompt)
        for position, (token, label) in enumerate(zip(row["input_ids"], row["labels"])):
            if position < len(prompt) and loss_on == "answer":
                assert label == IGNORE
            else:
                assert label == token
        answer_text = tokenizer.decode([t for t in row["labels"][len(prompt):]], skip_special_tokens=True)
        assert answer_text == data.formulation.encode(example)

    batch = data._collate_train([rows[i] for i in range(4)])
    padding = batch["attention_mask"] == 0
    assert padding.any() and (batch["labels"][padding] == IGNORE).all()
    assert (batch["input_ids"][padding] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("formulation", ["tagged", "bio"])
def test_candidate_sets_are_the_grammars_and_hold_every_gold_token(model_dir, tmp_path, formulation):
    from nerre.decoding import token_table

    data = tiny_data(model_dir, tmp_path, loss_on="candidates", formulation=formulation)
    rows = data.tokenized("train")
    table = token_table(data.tokenizer)
    for example, row in zip(data.examples["train"], rows):
        answer = row["input_ids"][row["prompt_length"] :]
        assert row["labels"] == [IGNORE] * row["prompt_length"] + answer  # the loss is on the answer
        assert len(row["candidate_sizes"]) == len(answer) and 0 not in row["candidate_sizes"]
        grammar, state, at = data.formulation.grammar(example, table), None, 0
        state = grammar.start()
        for token, size in zip(answer, row["candidate_sizes"]):
            allowed = row["candidates"][at : at + size]
            at += size
            assert token in allowed and allowed == grammar.allowed(state)  # what the decoder allows there
            state = grammar.advance(state, token)
    assert data.outside_grammar == []
    # batched, truncated: the sets of the kept answer positions, row by row
    data.max_sequence_tokens = max(len(r["input_ids"]) for r in rows) - 3
    batch = data._collate_train([rows[i] for i in range(4)])
    positions = int((batch["labels"][:, 1:] != IGNORE).sum())
    assert batch["candidate_allowed"].shape == (positions, len(batch["candidate_vocab"]))
    assert batch["candidate_allowed"].sum(1).min() >= 1 and not batch["candidate_full"].any()
    targets = batch["labels"][:, 1:][batch["labels"][:, 1:] != IGNORE]
    columns = torch.searchsorted(batch["candidate_vocab"], targets)
    assert batch["candidate_allowed"][torch.arange(positions), columns].all()


def test_a_gold_answer_outside_the_grammar_falls_back_to_the_whole_vocabulary(model_dir, tmp_path, caplog):
    data = tiny_data(model_dir, tmp_path, loss_on="candidates")
    example = data.examples["train"][0]
    answer = data.answer_ids(example)
    odd = answer[:3] + data.tokenizer("@@", add_special_tokens=False)["input_ids"] + answer[3:]
    flat, sizes = data.candidate_sets(example, odd)
    assert sizes[:3] == [s for s in sizes[:3] if s > 0] and sizes[3:] == [0] * (len(odd) - 3)
    assert len(flat) == sum(sizes)


def test_the_default_loss_is_over_candidates_where_the_formulation_has_a_grammar(model_dir, tmp_path):
    for formulation, expected in (("tagged", "candidates"), ("bio", "candidates"), ("json", "answer")):
        assert tiny_data(model_dir, tmp_path, loss_on=None, formulation=formulation).loss_on == expected


def test_candidate_loss_needs_a_grammar(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="loss_on: candidates needs a formulation with a grammar"):
        tiny_data(model_dir, tmp_path, loss_on="candidates", formulation="json")


def test_fit_with_the_candidate_loss_learns(model_dir, tmp_path):
    run(fit_args(model_dir, tmp_path, "--data.loss_on", "candidates", "--trainer.max_steps", "30",
                 "--trainer.check_val_every_n_epoch", "100", "--trainer.log_every_n_steps", "1",
                 "--trainer.num_sanity_val_steps", "0"))
    losses = [float(r["train/loss"]) for r in metrics(tmp_path) if r.get("train/loss")]
    assert len(losses) == 30 and losses[-1] < 0.2 * losses[0]


def test_the_candidate_loss_trains_under_ddp_with_gradient_accumulation(model_dir, tmp_path):
    """Two CPU ranks (gloo), one example per rank per micro-batch, two micro-batches per optimizer step:
    each rank builds the candidate vocabulary of its own batch, DDP averages the LoRA gradients,
    validation scores the whole split gathered from both ranks, and rank zero saves the adapter (it used
    to hang there, asking the other rank for the run folder). In a subprocess, so a hang fails the test."""
    args = fit_args(model_dir, tmp_path, "--data.loss_on", "candidates", "--trainer.strategy", "ddp_spawn",
                    "--trainer.devices", "2", "--trainer.accumulate_grad_batches", "2", "--data.batch_size", "1",
                    "--data.eval_batch_size", "1", "--trainer.max_steps", "12", "--trainer.check_val_every_n_epoch",
                    "6", "--trainer.log_every_n_steps", "1", "--trainer.num_sanity_val_steps", "0")
    done = subprocess.run([sys.executable, "-m", "nerre.cli", *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = metrics(tmp_path)
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    validated = [int(r["step"]) + 1 for r in rows if r.get("val/f1")]
    assert validated == [6, 12]  # 4 examples = 2 micro-batches per rank = 1 optimizer step per epoch
    assert len(losses) == 12 and sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses  # one per optimizer step
    assert [float(r["val/defects"]) for r in rows if r.get("val/defects")] == [0.0, 0.0]
    assert "nerre: saved adapter to" in done.stderr + done.stdout
    assert (next(tmp_path.glob("runs/**/adapter")) / "adapter_model.safetensors").is_file()


def test_the_last_step_is_validated_when_the_interval_skips_it(model_dir, tmp_path):
    run(fit_args(model_dir, tmp_path, "--trainer.max_steps", "7", "--data.batch_size", "1",
                 "--trainer.val_check_interval", "3", "--trainer.check_val_every_n_epoch", "null",
                 "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1"))
    validated = [int(r["step"]) + 1 for r in metrics(tmp_path) if r.get("val/f1")]
    assert validated == [3, 6, 7]  # 7: the final weights can be chosen too


def test_truncation_is_counted_and_done_when_batching(model_dir, tmp_path, caplog):
    data = tiny_data(model_dir, tmp_path, max_sequence_tokens=40, allow_truncation=True)
    rows = data.tokenized("train")
    assert data.truncated["train"] == 4 and min(len(r["input_ids"]) for r in rows) > 40  # stored whole
    batch = data._collate_train([rows[i] for i in range(4)])
    assert batch["input_ids"].shape == batch["labels"].shape == (4, 40) and bool(batch["attention_mask"].all())
    assert "max_sequence_tokens=40 cuts 4 of 4 training examples" in caplog.text


def test_resumed_run_continues_where_it_stopped(model_dir, tmp_path):
    first = tmp_path / "first"
    run(fit_args(model_dir, first, "--trainer.max_steps", "6", "--trainer.check_val_every_n_epoch", "100",
                 "--checkpoint.every_n_train_steps", "3"))
    (checkpoint,) = first.glob("runs/**/checkpoints/last.ckpt")
    state = torch.load(checkpoint, weights_only=False)
    assert state["global_step"] == 6
    assert state["state_dict"] and all("lora_" in key for key in state["state_dict"])  # no frozen base weights

    second = tmp_path / "second"
    run(fit_args(model_dir, second, "--trainer.max_steps", "10", "--trainer.check_val_every_n_epoch", "100",
                 "--checkpoint.every_n_train_steps", "5", "--ckpt_path", str(checkpoint)))
    (resumed,) = second.glob("runs/**/checkpoints/last.ckpt")
    state2 = torch.load(resumed, weights_only=False)
    assert state2["global_step"] == 10
    steps = [int(r["step"]) for r in metrics(second) if r.get("train/loss")]
    assert steps and min(steps) >= 6  # logging resumed after step 6, not from 0
    lora = [k for k in state["state_dict"]]
    assert any(not torch.equal(state["state_dict"][k], state2["state_dict"][k]) for k in lora)


def test_bad_configs_fail_before_training(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no/such/model.*does not exist"):
        run(fit_args(tmp_path / "no" / "such" / "model", tmp_path))
    with pytest.raises(FileNotFoundError, match="missing.jsonl: no such file"):
        run(fit_args(model_dir, tmp_path, "--data.train", "missing.jsonl"))
    bad = tmp_path / "bad.yaml"
    config = yaml.safe_load(CONFIG.read_text())
    config["data"]["schema"]["entities"] = config["data"]["schema"]["entities"][:2]  # LOC missing
    bad.write_text(yaml.safe_dump(config))
    args = fit_args(model_dir, tmp_path)
    args[2] = str(bad)
    with pytest.raises(ValueError, match="entity label 'LOC', which is not in the configured labels"):
        run(args)
    with pytest.raises(ConfigError, match="constrained decoding needs a formulation whose output has a grammar"):
        run(fit_args(model_dir, tmp_path, "--data.formulation", "json", "--model.init_args.constrained", "true",
                     "--data.max_sequence_tokens", "1024"))
    assert not list(tmp_path.glob("runs/**/checkpoints"))


def test_cli_prints_a_clear_error(model_dir, tmp_path, capsys):
    from nerre.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(model_dir, tmp_path, "--data.train", "missing.jsonl"))
    assert exit_info.value.code == 2
    assert "nerre: error:" in capsys.readouterr().err


def test_test_command_scores_a_checkpoint(model_dir, tiny_run, tmp_path):
    (checkpoint,) = tiny_run.glob("runs/**/checkpoints/last.ckpt")
    cli = run(["test", "--config", str(CONFIG), "--model.init_args.model", str(model_dir),
               "--data.data_dir", str(DATA), "--data.cache_dir", str(tmp_path / "cache"),
               "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--ckpt_path", str(checkpoint)])
    assert cli.trainer.callback_metrics["test/entity_f1"] == 1.0
    assert cli.trainer.callback_metrics["test/relation_f1"] == 1.0



def _run_fingerprint(root: Path) -> tuple[list[tuple[str, str]], list[str], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    (adapter,) = root.glob("runs/**/adapter/adapter_model.safetensors")
    rows = metrics(root)
    losses = [(r["step"], r["train/loss"]) for r in rows if r.get("train/loss")]
    scores = [r["val/f1"] for r in rows if r.get("val/f1")]
    return losses, scores, load_file(adapter)


def test_same_seed_gives_the_same_run(model_dir, tmp_path):
    """Data order, LoRA initialisation and dropout all follow the seed: losses, scores and weights repeat."""
    extra = ("--trainer.max_steps", "8", "--trainer.check_val_every_n_epoch", "4", "--trainer.log_every_n_steps", "1",
             "--model.init_args.lora_dropout", "0.1")
    runs = {}
    for name, seed in [("a", "0"), ("b", "0"), ("c", "1")]:
        run(fit_args(model_dir, tmp_path / name, *extra, "--seed_everything", seed))
        runs[name] = _run_fingerprint(tmp_path / name)
    (losses_a, scores_a, weights_a), (losses_b, scores_b, weights_b), (losses_c, _, weights_c) = runs.values()
    assert len(losses_a) == 8 and len(scores_a) == 2
    assert losses_a == losses_b and scores_a == scores_b
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert losses_c != losses_a and any(not torch.equal(weights_a[k], weights_c[k]) for k in weights_a)


def _gather_on_rank(rank: int, init_file: str, out_dir: str) -> None:
    from nerre.task import gather_outputs

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    shares = {0: [(0, "a"), (2, "c"), (4, "e")], 1: [(1, "b"), (3, "d"), (0, "a")]}  # 0 repeated to even out
    result = gather_outputs(shares[rank])
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    torch.distributed.destroy_process_group()


def test_validation_outputs_are_gathered_from_every_rank(tmp_path):
    """Under DDP, validation scores the whole split: every rank sees all outputs, each example once."""
    torch.multiprocessing.spawn(_gather_on_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    expected = [[0, "a"], [1, "b"], [2, "c"], [3, "d"], [4, "e"]]
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [expected, expected]


def test_fit_without_dev_data_trains_to_the_end_and_saves_the_last_adapter(model_dir, tmp_path):
    """The literature's protocol for ADE (no dev split): nothing is selected on dev, the last weights are kept."""
    run(fit_args(model_dir, tmp_path, "--data.val", "null", "--trainer.max_steps", "4",
                 "--trainer.check_val_every_n_epoch", "1"))
    rows = metrics(tmp_path)
    assert not any(r.get("val/f1") for r in rows)
    assert max(int(r["step"]) for r in rows if r.get("train/loss")) >= 0
    (adapter,) = tmp_path.glob("runs/**/adapter/nerre.json")
    assert (adapter.parent / "adapter_config.json").exists()
