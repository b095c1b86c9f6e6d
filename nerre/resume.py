"""What makes a resumed run continue exactly where it stopped: the data order and the random state.

Lightning restores the weights, the optimizer, the scheduler and its loop counters from a checkpoint. The
rest is here: the training order depends only on the seed and the epoch (:class:`EpochSampler`), the
training loader skips the batches of the interrupted epoch that were already trained on
(:class:`ResumableLoader`, resumable through Lightning's ``state_dict`` protocol), and the random number
generators (dropout) are saved and restored (:class:`RandomState`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning import Callback
from torch.utils.data import DataLoader
from transformers.trainer_pt_utils import LengthGroupedSampler


class EpochSampler(LengthGroupedSampler):
    """Length-grouped random order (batches of similar lengths) drawn from ``seed + epoch`` alone.

    Args:
        batch_size: the training batch size.
        lengths: the length of each example.
        seed: the data seed.
        epoch: returns the current epoch when an epoch's order is drawn.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int, epoch: Callable[[], int]):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, epoch

    def __iter__(self) -> Iterator[int]:
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch())
        return super().__iter__()


class ResumableLoader(DataLoader):
    """A training ``DataLoader`` that Lightning can resume in the middle of an epoch.

    Its state is ``position()``: the epoch and the batches of it already trained on. Loaded from a checkpoint,
    the next iteration over the same epoch skips those batches (the order is the same, see
    :class:`EpochSampler`), so no batch is trained on twice or left out.

    Args:
        position: returns ``{"epoch": int, "batches": int}``.
        args, kwargs: as for ``DataLoader``.
    """

    def __init__(self, *args: Any, position: Callable[[], dict[str, int]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.position = position
        self._resume_at: dict[str, int] | None = None

    def state_dict(self) -> dict[str, int]:
        return dict(self.position())

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = dict(state)

    def __iter__(self) -> Any:
        iterator = super().__iter__()
        resume_at, self._resume_at = self._resume_at, None
        if resume_at and resume_at["epoch"] == self.position()["epoch"] and resume_at["batches"] < len(self):
            for _ in range(resume_at["batches"]):
                next(iterator)
        return iterator


class RandomState(Callback):
    """Saves the state of the random number generators in each checkpoint and restores it on resume, so that
    dropout draws what it would have drawn without the interruption."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state  # plain tensors and tuples: loadable with torch.load(weights_only=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        random.setstate(state_dict["python"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
