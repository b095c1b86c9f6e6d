"""Callbacks that `nerre fit` adds to every run."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info

log = logging.getLogger(__name__)


class SaveBestAdapter(Callback):
    """Saves the adapter (``save_pretrained``), tokenizer and nerre settings whenever ``monitor`` improves.

    Without validation data the adapter is saved once, when fitting ends.

    Args:
        monitor: the logged metric to watch.
        mode: ``max`` or ``min``.
        dirname: folder name inside the run folder.
    """

    def __init__(self, monitor: str = "val/f1", mode: str = "max", dirname: str = "adapter"):
        self.monitor, self.mode, self.dirname = monitor, mode, dirname
        self.best: float | None = None
        self.saved = False

    def path(self, trainer: Trainer) -> Path:
        return Path(trainer.log_dir or trainer.default_root_dir) / self.dirname

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

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.saved:
            self._save(trainer, pl_module, f"end of training, step {trainer.global_step} (no {self.monitor} logged)")

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
