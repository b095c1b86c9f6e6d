"""``nerre fit|validate|test``: a LightningCLI over :class:`~nerre.task.BaseTask` subclasses, with nerre's
callbacks. Its own module (imported when a training command runs) so that the CLI class is importable by
name: ``ddp_spawn`` pickles the trainer, which reaches the CLI through the saved-config callback."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from nerre.callbacks import AtomicCheckpointIO, InterruptCheckpoint, PrintAndSaveConfig, SaveBestAdapter
from nerre.datamodule import ExtractionData
from nerre.errors import ConfigError, MissingPathError, user_error
from nerre.models import cpu_has_native_bf16
from nerre.resume import RandomState
from nerre.task import BaseTask

DEFAULT_RUNS_DIR = "runs"


def default_precision() -> str:
    """``bf16-mixed`` where the hardware computes bf16 natively (recent GPUs, CPUs with AMX or AVX512-BF16),
    else ``32-true``: emulated bf16 on an older CPU is many times slower than float32."""
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def _data_seed(seed: bool | int) -> int:
    """The data seed linked to ``seed_everything`` (42 when that is not a number)."""
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 42


class NerreCLI(LightningCLI):
    """LightningCLI with the adapter and checkpoint callbacks, the seed linked to the data, and checked
    checkpoint paths."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("model.init_args.model", "data.model")
        # one seed for the whole run: weights, dropout, data order, the training subset, few-shot turns
        parser.link_arguments("seed_everything", "data.seed", compute_fn=_data_seed)
        parser.add_lightning_class_args(SaveBestAdapter, "adapter")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "step_checkpoint")
        parser.add_lightning_class_args(InterruptCheckpoint, "interrupt_checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/f1", "checkpoint.mode": "max", "checkpoint.save_last": True,
                             "step_checkpoint.every_n_train_steps": 50, "step_checkpoint.save_top_k": 1,
                             "step_checkpoint.filename": "latest-{step}"})

    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and not str(path).startswith(("last", "best", "hpc", "registry")) and not Path(path).is_file():
            raise MissingPathError(f"{path}: checkpoint not found; pass a .ckpt file from a run's checkpoints/ "
                                   "folder")
        try:
            super()._parse_ckpt_path()
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ConfigError(f"{path}: cannot read this checkpoint ({detail}); resume from another checkpoint "
                              "of the run") from None

    def before_instantiate_classes(self) -> None:
        trainer = self.config[self.subcommand].trainer
        logger = trainer.get("logger")
        init_args = getattr(logger, "init_args", None)
        if trainer.get("default_root_dir") and init_args is not None and init_args.get("save_dir") == DEFAULT_RUNS_DIR:
            init_args.save_dir = trainer.default_root_dir  # the default logger follows default_root_dir

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        callbacks = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
        callbacks.append(RandomState())
        if config.get("enable_checkpointing") is False:  # honoured: no checkpoint callback at all
            callbacks = [c for c in callbacks if not isinstance(c, Checkpoint)]
        if not config.get("plugins"):
            config["plugins"] = [AtomicCheckpointIO()]
        return self._instantiate_trainer(config, callbacks)


def run_training(args: Sequence[str]) -> NerreCLI:
    """Run ``nerre fit|validate|test`` with ``args`` (the subcommand first) and return the CLI object."""
    try:
        return NerreCLI(
            model_class=BaseTask,
            datamodule_class=ExtractionData,
            subclass_mode_model=True,
            save_config_callback=PrintAndSaveConfig,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=42,
            trainer_defaults={
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                           "init_args": {"save_dir": DEFAULT_RUNS_DIR}},
                "precision": default_precision(),
            },
            args=None if list(args) == sys.argv[1:] else list(args),  # LightningCLI warns when given both
        )
    except Exception as err:  # jsonargparse and Lightning wrap errors raised while building and running: unwrap ours
        cause = user_error(err)
        if cause is not None and cause is not err:
            raise cause from None
        raise
