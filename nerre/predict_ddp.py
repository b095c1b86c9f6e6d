"""``nerre predict --devices N``: one input predicted by N processes through Lightning's ``Trainer.predict``.

Every process (rank) loads the adapter itself and predicts its share of the input: chunks of ``8 *
batch_size`` consecutive texts (what one process decodes together), dealt out by Lightning's distributed
sampler (rank ``r`` of ``N`` takes chunks ``r``, ``r + N`` ...). A prediction writer
(:class:`RankFiles`, a ``BasePredictionWriter``) appends each rank's records, numbered by input position,
to its own file in a scratch folder beside the output; when every rank is done, rank 0 merges the files in
input order into the output and removes the folder. Each text is decoded as one process decodes it, so the
file is the one ``--devices 1`` writes, byte for byte.

The input texts are held in memory (the sampler needs their number); the predictions are not. With several
machines (``num_nodes``) the output folder must be on a file system that all of them see.
"""

from __future__ import annotations

import heapq
import json
import logging
import shutil
import time
from collections.abc import Iterator
from math import ceil
from pathlib import Path
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from nerre.errors import ConfigError
from nerre.example import Example
from nerre.prediction_file import Tally, record_line, write_as_you_go

log = logging.getLogger(__name__)


class Chunks(Dataset):
    """The input as chunks of ``size`` consecutive examples: ``(positions, examples)`` per item."""

    def __init__(self, examples: list[Example], size: int):
        self.examples, self.size = examples, size

    def __len__(self) -> int:
        return ceil(len(self.examples) / self.size)

    def __getitem__(self, index: int) -> tuple[list[int], list[Example]]:
        start = index * self.size
        stop = min(start + self.size, len(self.examples))
        return list(range(start, stop)), self.examples[start:stop]


def _one(batch: list[Any]) -> Any:
    return batch[0]


class PredictionModule(LightningModule):
    """An :class:`~nerre.predict.Extractor` as a LightningModule: each rank loads the adapter in ``setup``
    (nothing large is pickled for ``ddp_spawn``); Lightning then moves the model to the rank's device.

    Args:
        settings: the keyword arguments of :meth:`Extractor.load` (adapter, base_model, constrained,
            batch_size, merge).
    """

    def __init__(self, settings: dict[str, Any]):
        super().__init__()
        self.settings = settings
        self.extractor: Any = None

    def setup(self, stage: str) -> None:
        from nerre.predict import Extractor

        if self.extractor is None:
            self.extractor = Extractor.load(**self.settings)
            self.model = self.extractor.model  # a submodule: moved to the rank's device by Lightning

    def transfer_batch_to_device(self, batch: Any, device: Any, dataloader_idx: int) -> Any:
        return batch  # examples, not tensors: the decoder puts its inputs on the model's device

    def predict_step(self, batch: tuple[list[int], list[Example]], batch_idx: int) -> list[tuple[int, str]]:
        positions, examples = batch
        return [(i, record_line(p.to_dict())) for i, p in zip(positions, self.extractor.predict(examples))]


class RankFiles(BasePredictionWriter):
    """Each rank appends ``position<TAB>record`` lines to ``folder/rank{R}.tsv`` as its batches finish; at
    the end rank 0 merges them in input order into ``output`` (:func:`merge_ranks`).

    Args:
        folder: the scratch folder (beside the output).
        output: the prediction JSONL to write.
        total: the number of input texts.
    """

    def __init__(self, folder: Path, output: Path, total: int):
        super().__init__(write_interval="batch")
        self.folder, self.output, self.total = folder, output, total
        self._file: Any = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._file = (self.folder / f"rank{trainer.global_rank}.tsv").open("w", encoding="utf-8")

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: Any, batch_indices: Any,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        for position, line in prediction:
            self._file.write(f"{position}\t{line}\n")
        self._file.flush()

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._file.close()
        trainer.strategy.barrier()  # every rank's file is complete
        if trainer.is_global_zero:
            files = [self.folder / f"rank{r}.tsv" for r in range(trainer.world_size)]
            merge_ranks(files, self.output, self.total)
            shutil.rmtree(self.folder, ignore_errors=True)
        trainer.strategy.barrier()


def merge_ranks(files: list[Path], output: Path, total: int) -> Path:
    """Merge rank files (each in increasing input position) into ``output`` in input order; a position that
    a sampler gave two ranks is written once.

    Raises:
        RuntimeError: when the files do not hold every position from 0 to ``total - 1``.
    """
    def read(file: Path) -> Iterator[tuple[int, str]]:
        with file.open(encoding="utf-8") as f:
            for line in f:
                position, record = line.rstrip("\n").split("\t", 1)
                yield int(position), record

    def unique() -> Iterator[tuple[str, Any]]:
        expected = 0
        for position, record in heapq.merge(*(read(f) for f in files)):
            if position < expected:
                continue  # the same text from a second rank
            if position != expected:
                break
            expected += 1
            yield record, None
        if expected != total:
            raise RuntimeError(f"the ranks predicted texts 0 to {expected - 1} of {total}; {output} is not written")

    return write_as_you_go(unique(), output)


def predict_distributed(examples: list[Example], output: Path, evaluate: bool, settings: dict[str, Any],
                        trainer: dict[str, Any]) -> dict[str, Any] | None:
    """Predict ``examples`` across processes and write prediction JSONL to ``output``; the summary of
    ``nerre predict`` on rank 0 (and in the process that spawned the ranks), None on the other ranks.

    Args:
        examples: the input texts.
        output: the prediction JSONL file.
        evaluate: score the predictions against the annotations of ``examples``.
        settings: the keyword arguments of :meth:`Extractor.load`.
        trainer: Lightning ``Trainer`` arguments: devices, strategy, num_nodes, accelerator.
    """
    from nerre.adapter import read_settings
    from nerre.decoding import use_constraints

    if not str(trainer["strategy"]).startswith("ddp"):
        raise ConfigError(f"--strategy {trainer['strategy']}: prediction across processes takes ddp or ddp_spawn")
    formulation = read_settings(settings["adapter"]).build()[0]  # fails here, before any process starts
    if not examples:
        raise ConfigError("the input holds no texts to predict")
    output.parent.mkdir(parents=True, exist_ok=True)
    folder = output.with_name(f".{output.name}.ranks")
    chunk = 8 * settings["batch_size"]
    runner = Trainer(**trainer, logger=False, enable_checkpointing=False, enable_model_summary=False,
                     callbacks=[RankFiles(folder, output, len(examples))])
    loader = DataLoader(Chunks(examples, chunk), batch_size=1, collate_fn=_one)
    started = time.perf_counter()
    runner.predict(PredictionModule(settings), loader, return_predictions=False)
    if not runner.is_global_zero:
        return None
    seconds = time.perf_counter() - started
    tally = Tally()
    with output.open(encoding="utf-8") as f:
        for line in f:
            tally.add(json.loads(line))
    summary: dict[str, Any] = {
        "examples": tally.examples,
        "entities": tally.entities,
        "relations": tally.relations,
        "defects": dict(tally.defects),
        "constrained": use_constraints(formulation, settings["constrained"]),
        "seconds": round(seconds, 2),
        "sentences_per_s": round(tally.examples / seconds, 3) if seconds else None,
        "output": str(output),
        "format": "jsonl",
        "processes": runner.world_size,
    }
    if evaluate:
        from nerre.loaders.jsonl import read_predictions
        from nerre.metrics import evaluate as score

        summary["scores"] = score(examples, read_predictions(output), symmetric=formulation.schema.symmetric_relations)
    return summary
