"""The ``nerre`` command: ``fit``/``validate``/``test`` (LightningCLI), ``data``, ``evaluate``, ``predict``."""

from __future__ import annotations

import json
import pickle
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nerre.errors import ConfigError, MissingPathError, NerreError, user_error
from nerre.loaders.options import NO_OPTIONS, ReaderOptions, ReadNotes

TRAINING_COMMANDS = ("fit", "validate", "test")
DEFAULT_RUNS_DIR = "runs"

USAGE = """usage: nerre COMMAND [options]

commands:
  fit --config FILE        fine-tune a LoRA adapter (LightningCLI; --help for all options)
  validate --config FILE   generate on the dev split and score it
  test --config FILE       generate on the test split and score it
  data stats PATH          examples, tokens, entities and relations per type, and what reading converted (JSON)
  data roundtrip PATH      check that parse(encode(x)) reproduces every example (JSON)
  data convert IN OUT [--to FORMAT]
                           write a corpus in another format, counting what the target cannot hold
  evaluate --gold PATH --pred PATH
                           precision, recall and F1 of predictions (JSON)
  predict --adapter DIR --input PATH --output PATH
                           extract entities and relations with a trained adapter

Formats: conll, spert, jsonl, json, hf, brat, doccano, labelstudio, spacy (detected from the content, or
--format). Reader options: --reader_options.NAME (evaluate: --gold_options.NAME, --pred_options.NAME).
Run `nerre COMMAND --help` for the options of a command.
"""


def _read(path: str, format: str | None, options: ReaderOptions) -> tuple[str, list[Any], ReadNotes]:
    """The format, the examples and the notes of what reading converted or skipped."""
    from nerre.loaders import detect_format, load_examples

    notes = ReadNotes()
    fmt = format or detect_format(path, options)
    return fmt, load_examples(path, fmt, options, notes=notes), notes


def stats(path: str, format: str | None = None, reader_options: ReaderOptions = NO_OPTIONS) -> dict[str, Any]:
    """Count examples, tokens, entities and relations (per label) in a corpus, and say what reading converted.

    Args:
        path: corpus file or folder (BRAT folder, saved Hugging Face dataset).
        format: conll, spert, jsonl, json, hf, brat, doccano, labelstudio or spacy; detected when omitted.
        reader_options: options of the reader (field names, offsets, tag scheme ...).
    """
    fmt, examples, notes = _read(path, format, reader_options)
    entities = Counter(e.label for ex in examples for e in ex.entities)
    relations = Counter(r.label for ex in examples for r in ex.relations)
    return {
        "format": fmt,
        "examples": len(examples),
        "tokens": sum(len(ex.tokens or []) for ex in examples),
        "entities": dict(sorted(entities.items())),
        "relations": dict(sorted(relations.items())),
        "converted": notes.lines(),
    }


def roundtrip(path: str, format: str | None = None, formulation: str = "tagged", types_file: str | None = None,
              reader_options: ReaderOptions = NO_OPTIONS) -> dict:
    """Encode every example as a target text and parse it back; count the exact reproductions.

    An example is exact when parsing gives back, without a defect, all that the formulation can hold
    of it. What it cannot hold (``bio``: overlapping entities, and the relations that lose an argument)
    is counted under ``lost``, by kind, next to the corpus's ``entities`` and ``relations``.

    Args:
        path: corpus file or folder.
        format: the corpus format; detected when omitted.
        formulation: tagged, json or bio.
        types_file: SpERT-style types JSON for label display names (labels are inferred when omitted).
        reader_options: options of the reader.
    """
    from nerre.formulation import get_formulation
    from nerre.schema import Schema

    _, examples, notes = _read(path, format, reader_options)
    schema = Schema.from_types_file(types_file) if types_file else Schema.infer(examples)
    fm = get_formulation(formulation, schema)
    exact, defects, lost, failed = 0, Counter(), Counter(), []
    representable = [fm.representable(ex) for ex in examples]
    read, each = fm.parse(examples, [fm.encode(ex) for ex in examples])
    for ex, (kept, left_out), got, found in zip(examples, representable, read, each):
        lost.update(left_out)
        defects.update(found)
        if got.same_annotations(kept) and not found:
            exact += 1
        elif len(failed) < 10:
            failed.append(ex.id)
    return {"examples": len(examples), "exact": exact, "formulation": formulation, "defects": dict(defects),
            "failed": failed, "converted": notes.lines(), "entities": sum(len(ex.entities) for ex in examples),
            "relations": sum(len(ex.relations) for ex in examples), "lost": dict(sorted(lost.items()))}


def convert(source: str, target: str, to: str | None = None, format: str | None = None,
            reader_options: ReaderOptions = NO_OPTIONS) -> dict[str, Any]:
    """Write a corpus in another format; what the target cannot hold (nested entities or relations in CoNLL
    columns, entities off the token boundaries ...) is counted, as is what reading converted.

    Args:
        source: the corpus to read.
        target: the file (folder for brat and hf) to write.
        to: the target format; told by the suffix of ``target`` when omitted (.jsonl, .spacy, .conll, .ann).
        format: the source format; detected when omitted.
        reader_options: options of the reader.
    """
    from nerre.loaders import convert as run_convert

    return run_convert(source, target, to=to, format=format, options=reader_options)


def evaluate(*, gold: str, pred: str, gold_format: str | None = None, pred_format: str | None = None,
             gold_options: ReaderOptions = NO_OPTIONS, pred_options: ReaderOptions = NO_OPTIONS,
             types_file: str | None = None, symmetric: list[str] | None = None) -> dict[str, Any]:
    """Score predictions against gold annotations: entity and relation precision, recall, F1.

    Entities are scored span-exact (as seqeval/conlleval); relations in ``strict`` mode (both
    argument spans and types and the relation type) and ``boundaries`` mode (spans and relation type).

    Args:
        gold: gold corpus, any supported format.
        pred: predictions: what ``nerre predict`` wrote (JSONL by default, see the README), or any format.
        gold_format: format of ``gold``; detected when omitted.
        pred_format: format of ``pred``; detected when omitted.
        gold_options: reader options for ``gold``.
        pred_options: reader options for ``pred``.
        types_file: SpERT-style types JSON; its relation types marked symmetric score in both directions.
        symmetric: relation types that score in both directions (added to those of ``types_file``).
    """
    from nerre.loaders import detect_format, load_examples
    from nerre.loaders.jsonl import read_predictions
    from nerre.metrics import evaluate as score
    from nerre.schema import Schema

    symmetric_labels = set(symmetric or [])
    if types_file:
        symmetric_labels |= Schema.from_types_file(types_file).symmetric_relations
    gold_examples = load_examples(gold, gold_format, gold_options)
    if pred_options == NO_OPTIONS and (pred_format or detect_format(pred)) == "jsonl":
        predictions = read_predictions(pred)  # nerre's own records: those without an id pair by position
    else:
        predictions = load_examples(pred, pred_format, pred_options)
    return score(gold_examples, predictions, symmetric=symmetric_labels, gold_source=gold, pred_source=pred)


def _print_json(result: Any) -> None:
    print(json.dumps(result, indent=2, ensure_ascii=False))


def default_precision() -> str:
    """``bf16-mixed`` where the hardware computes bf16 natively (recent GPUs, CPUs with AMX or AVX512-BF16),
    else ``32-true``: emulated bf16 on an older CPU is many times slower than float32."""
    import torch

    from nerre.models import cpu_has_native_bf16

    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def _data_seed(seed: bool | int) -> int:
    """The data seed linked to ``seed_everything`` (42 when that is not a number)."""
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 42


def run_training(args: Sequence[str]) -> Any:
    """``nerre fit|validate|test``: a LightningCLI over :class:`~nerre.task.BaseTask` subclasses."""
    from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from nerre.callbacks import AtomicCheckpointIO, InterruptCheckpoint, PrintAndSaveConfig, SaveBestAdapter
    from nerre.datamodule import ExtractionData
    from nerre.resume import RandomState
    from nerre.task import BaseTask

    class NerreCLI(LightningCLI):
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


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``nerre`` command; ``args`` defaults to ``sys.argv[1:]``."""
    try:
        run(sys.argv[1:] if args is None else args)
    except NerreError as err:
        print(f"nerre: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # (training handles its own Ctrl-C: it saves a checkpoint and exits 1)
        print("nerre: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def run(args: Sequence[str]) -> Any:
    """Run one ``nerre`` command and return its result (the LightningCLI object for training commands)."""
    args = list(args)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return None
    if args[0] in TRAINING_COMMANDS:
        return run_training(args)
    from jsonargparse import CLI

    commands: dict[str, Any] = {"data": {"stats": stats, "roundtrip": roundtrip, "convert": convert},
                                "evaluate": evaluate}
    if args[0] == "predict":
        from nerre.predict import predict

        commands["predict"] = predict
    if args[0] not in commands:
        print(f"nerre: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    result = CLI(commands, args=args, as_positional=True)
    if isinstance(result, dict):
        _print_json(result)
    return result


if __name__ == "__main__":
    main()
