"""Callbacks that `nerre fit` adds to every run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import OnExceptionCheckpoint
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from nerre.atomic import atomic_open

log = logging.getLogger(__name__)


class SaveBestAdapter(Callback):
    """Saves the adapter (``save_pretrained``), tokenizer and nerre settings whenever ``monitor`` improves.

    Without validation data the adapter is saved once, when fitting ends. A run interrupted (Ctrl-C, an
    error) before any adapter was saved saves the weights it has, so that no run ends without one.
    The last step (``trainer.max_steps``) is always validated, so the final weights can be chosen
    even when the validation interval does not fall on it (Lightning validates on a stop request,
    not on reaching ``max_steps`` mid-epoch).

    With ``average_last`` N > 0 it also keeps the trained weights at the end of each training epoch (and at
    the last step) and, when fitting ends, saves the average of the last N of them as ``{dirname}_averaged``
    beside the adapter (checkpoint averaging; a resumed run averages the epochs since it resumed).

    Args:
        monitor: the logged metric to watch.
        mode: ``max`` or ``min``.
        dirname: folder name inside the run folder.
        average_last: also save the average of the weights at the last N epoch ends (0: no averaging).
    """

    def __init__(self, monitor: str = "val/f1", mode: str = "max", dirname: str = "adapter", average_last: int = 0):
        if average_last < 0:
            raise ValueError(f"adapter.average_last must be 0 (off) or a number of epochs, not {average_last}")
        self.monitor, self.mode, self.dirname, self.average_last = monitor, mode, dirname, average_last
        self.best: float | None = None
        self.saved = False
        self.snapshots: list[tuple[int, dict[str, torch.Tensor]]] = []  # (step, trained weights on the CPU)

    def path(self, trainer: Trainer) -> Path:
        return run_dir(trainer) / self.dirname

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best = value
            self._save(trainer, pl_module, f"{self.monitor}={value:.4f} at step {trainer.global_step}")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if 0 < trainer.max_steps <= trainer.global_step and not trainer.should_stop:
            trainer.should_stop = True  # ends training as max_steps would, and validates this step first

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.average_last:
            self._snapshot(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.saved:
            self._save(trainer, pl_module, f"end of training, step {trainer.global_step} (no {self.monitor} logged)")
        if self.average_last:
            self._snapshot(trainer, pl_module)  # the last step, when it ended mid-epoch
            self._save_average(trainer, pl_module)

    def _snapshot(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.snapshots and self.snapshots[-1][0] == trainer.global_step:
            return
        weights = {name: p.detach().to("cpu", copy=True) for name, p in pl_module.named_parameters() if p.requires_grad}
        self.snapshots = (self.snapshots + [(trainer.global_step, weights)])[-self.average_last :]

    def _save_average(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save the mean of the kept snapshots as ``{dirname}_averaged``; the module's own weights are restored."""
        if not self.snapshots:
            return
        params = {name: p for name, p in pl_module.named_parameters() if p.requires_grad}
        current = {name: p.detach().clone() for name, p in params.items()}
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(torch.stack([w[name].float() for _, w in self.snapshots]).mean(0).to(p.dtype))
            if trainer.is_global_zero:
                path = pl_module.save_adapter(run_dir(trainer) / f"{self.dirname}_averaged")
                steps = ", ".join(str(step) for step, _ in self.snapshots)
                rank_zero_info(f"nerre: saved the average of the weights at steps {steps} to {path}")
            for name, p in params.items():
                p.copy_(current[name])

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not self.saved and trainer.global_step > 0 and trainer.state.fn == "fit":
            self._save(trainer, pl_module, f"interrupted at step {trainer.global_step}, before any validation")

    def _save(self, trainer: Trainer, pl_module: LightningModule, why: str) -> None:
        if trainer.is_global_zero:
            path = pl_module.save_adapter(self.path(trainer))
            rank_zero_info(f"nerre: saved adapter to {path} ({why})")
        self.saved = True

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = state_dict.get("best")


class PrintAndSaveConfig(SaveConfigCallback):
    """Prints the fully resolved config at the start of a run, and saves it in the run folder."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero:
            rank_zero_info("nerre: resolved config\n" + self.parser.dump(self.config, skip_none=False))


class InterruptCheckpoint(OnExceptionCheckpoint):
    """Saves a checkpoint when training stops on an exception or Ctrl-C, and says how to resume from it.

    Args:
        filename: the checkpoint's file name, without ``.ckpt``.
        dirpath: its folder; default the folder of the run's other checkpoints.
    """

    def __init__(self, filename: str = "interrupted", dirpath: str | None = None):
        super().__init__(dirpath or "", filename)
        self.given_dirpath = dirpath

    def on_exception(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.global_step == 0 or trainer.state.fn != "fit":
            return  # nothing trained yet: nothing to keep
        if not self.given_dirpath:
            self.dirpath = str(_checkpoint_dir(trainer))
        super().on_exception(trainer, *args, **kwargs)
        rank_zero_info(f"nerre: stopped at step {trainer.global_step}; saved {self.ckpt_path}. Resume with the same "
                       f"command and --ckpt_path {self.ckpt_path}")

    def teardown(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        if self.dirpath:  # a run that ends normally removes a stale checkpoint of an interruption
            super().teardown(trainer, *args, **kwargs)


def _checkpoint_dir(trainer: Trainer) -> Path:
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "dirpath", None) and not isinstance(callback, OnExceptionCheckpoint):
            return Path(callback.dirpath)
    return run_dir(trainer) / "checkpoints"


def run_dir(trainer: Trainer) -> Path:
    """The run folder, as ``trainer.log_dir`` names it on rank zero, but without its broadcast: only rank
    zero writes there, and a collective called by one rank alone hangs a multi-process run."""
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    logger = trainer.loggers[0]
    folder = logger.log_dir if isinstance(logger, (CSVLogger, TensorBoardLogger)) else logger.save_dir
    return Path(folder or trainer.default_root_dir)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, then renames it into place, with ordinary
    permissions (Lightning's own writer stages it in the system's temporary folder with mode 0600)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        if "://" in str(path):  # remote storage: fsspec's own transaction
            return super().save_checkpoint(checkpoint, path, storage_options)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)
        return None
