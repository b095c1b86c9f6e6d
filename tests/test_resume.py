"""Interrupted training keeps its progress, and resuming continues exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import fit_args
from safetensors.torch import load_file

from nerre.cli import run

# 4 examples, batch 1: 4 steps per epoch; dropout on, so the random state matters too
TRAIN = ("--trainer.max_steps", "8", "--data.batch_size", "1", "--trainer.check_val_every_n_epoch", "100",
         "--model.init_args.lora_dropout", "0.2", "--model.init_args.lr", "0.002", "--step_checkpoint.every_n_train_steps", "3")


def adapter_weights(root: Path) -> dict[str, torch.Tensor]:
    (file,) = root.glob("runs/**/adapter/adapter_model.safetensors")
    return load_file(file)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_run_resumes_to_the_same_weights(tiny_model_dir, tmp_path, caplog):
    run(fit_args(tiny_model_dir, tmp_path / "whole", *TRAIN))
    whole = adapter_weights(tmp_path / "whole")

    stop = json.dumps([{"class_path": "tiny.StopAt", "init_args": {"step": 5}}])  # Ctrl-C in the second epoch
    with pytest.raises(SystemExit):
        run(fit_args(tiny_model_dir, tmp_path / "cut", *TRAIN, "--trainer.callbacks", stop))
    (checkpoints,) = (tmp_path / "cut").glob("runs/**/checkpoints")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["interrupted.ckpt", "latest-step=3.ckpt"]
    assert torch.load(checkpoints / "interrupted.ckpt", weights_only=False)["global_step"] == 5
    assert f"Resume with the same command and --ckpt_path {checkpoints / 'interrupted.ckpt'}" in caplog.text
    interrupted = adapter_weights(tmp_path / "cut")  # no validation yet: the weights it had are kept
    assert not same(interrupted, whole)
    probe = tmp_path / "probe"  # what open() gives a new file under this umask
    probe.write_text("")
    assert (checkpoints / "interrupted.ckpt").stat().st_mode & 0o777 == probe.stat().st_mode & 0o777

    run(fit_args(tiny_model_dir, tmp_path / "resumed", *TRAIN, "--ckpt_path", str(checkpoints / "interrupted.ckpt")))
    assert same(adapter_weights(tmp_path / "resumed"), whole)

    # the checkpoint written every N steps (here 3) resumes exactly too
    run(fit_args(tiny_model_dir, tmp_path / "from-step", *TRAIN, "--ckpt_path", str(checkpoints / "latest-step=3.ckpt")))
    assert same(adapter_weights(tmp_path / "from-step"), whole)
