"""The ``nerre`` command: ``fit``/``validate``/``test`` (LightningCLI), ``data``, ``evaluate``, ``predict``."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from nerre.errors import ConfigError, DataError, root_cause

TRAINING_COMMANDS = ("fit", "validate", "test")
USER_ERRORS = (ConfigError, DataError, FileNotFoundError)

USAGE = """usage: nerre COMMAND [options]

commands:
  fit --config FILE        fine-tune a LoRA adapter (LightningCLI; --help for all options)
  validate --config FILE   generate on the dev split and score it
  test --config FILE       generate on the test split and score it
  data stats PATH          counts of sentences, tokens, entities and relations (JSON)
  data roundtrip PATH      check that decode(encode(x)) reproduces every example (JSON)
  evaluate --gold PATH --pred PATH
                           precision, recall and F1 of predictions (JSON)
  predict --adapter DIR --input FILE --output FILE
                           extract entities and relations with a trained adapter

Run `nerre COMMAND --help` for the options of a command.
"""


def stats(path: str, format: str | None = None) -> dict[str, Any]:
    """Count sentences, tokens, entities and relations (per label) in a corpus file.

    Args:
        path: corpus file (or saved Hugging Face dataset folder).
        format: conll, spert, jsonl or hf; detected from the path when omitted.
    """
    from nerre.loaders import load_examples

    examples = load_examples(path, format)
    entities = Counter(e.label for ex in examples for e in ex.entities)
    relations = Counter(r.label for ex in examples for r in ex.relations)
    return {
        "sentences": len(examples),
        "tokens": sum(len(ex.tokens or []) for ex in examples),
        "entities": dict(sorted(entities.items())),
        "relations": dict(sorted(relations.items())),
    }


def roundtrip(path: str, format: str | None = None, formulation: str = "tagged", types_file: str | None = None) -> dict:
    """Encode every example as a target text and decode it back; count the exact reproductions.

    An example is exact when decoding gives back, without a defect, all that the formulation can hold
    of it. What it cannot hold (``bio``: overlapping entities, and the relations that lose an argument)
    is counted under ``lost``, by kind, next to the corpus's ``entities`` and ``relations``.

    Args:
        path: corpus file (or saved Hugging Face dataset folder).
        format: conll, spert, jsonl or hf; detected from the path when omitted.
        formulation: tagged, json or bio.
        types_file: SpERT-style types JSON for label display names (labels are inferred when omitted).
    """
    from nerre.formulation import get_formulation
    from nerre.loaders import load_examples
    from nerre.schema import Schema

    examples = load_examples(path, format)
    schema = Schema.from_types_file(types_file) if types_file else Schema.infer(examples)
    fm = get_formulation(formulation, schema)
    exact, defects, lost, failed = 0, Counter(), Counter(), []
    for ex in examples:
        kept, left_out = fm.representable(ex)
        lost.update(left_out)
        decoded = fm.decode(ex, fm.encode(ex))
        defects.update(decoded.defects)
        if decoded.as_example(ex).same_annotations(kept) and not decoded.defects:
            exact += 1
        elif len(failed) < 10:
            failed.append(ex.id)
    return {"examples": len(examples), "exact": exact, "formulation": formulation, "defects": dict(defects),
            "failed": failed, "entities": sum(len(ex.entities) for ex in examples),
            "relations": sum(len(ex.relations) for ex in examples), "lost": dict(sorted(lost.items()))}


def evaluate(*, gold: str, pred: str, gold_format: str | None = None, types_file: str | None = None,
             symmetric: list[str] | None = None) -> dict[str, Any]:
    """Score predictions against gold annotations: entity and relation precision, recall, F1.

    Entities are scored span-exact (as seqeval/conlleval); relations in ``strict`` mode (both
    argument spans and types and the relation type) and ``boundaries`` mode (spans and relation type).

    Args:
        gold: gold corpus, any supported format.
        pred: prediction JSONL, as written by ``nerre predict`` (see the README).
        gold_format: format of ``gold``; detected from the path when omitted.
        types_file: SpERT-style types JSON; its relation types marked symmetric score in both directions.
        symmetric: relation types that score in both directions (added to those of ``types_file``).
    """
    from nerre.loaders import load_examples, read_jsonl
    from nerre.metrics import evaluate as score
    from nerre.schema import Schema

    symmetric_labels = set(symmetric or [])
    if types_file:
        symmetric_labels |= Schema.from_types_file(types_file).symmetric_relations
    gold_examples = load_examples(gold, gold_format)
    predictions = read_jsonl(pred)
    return score(gold_examples, predictions, symmetric=symmetric_labels)


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
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from nerre.callbacks import PrintAndSaveConfig, SaveBestAdapter
    from nerre.datamodule import ExtractionData
    from nerre.task import BaseTask

    class NerreCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.link_arguments("model.init_args.model", "data.model")
            # one seed for the whole run: weights, dropout, data order, the training subset, few-shot turns
            parser.link_arguments("seed_everything", "data.seed", compute_fn=_data_seed)
            parser.add_lightning_class_args(SaveBestAdapter, "adapter")
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({"checkpoint.monitor": "val/f1", "checkpoint.mode": "max", "checkpoint.save_last": True})

    try:
        return NerreCLI(
            model_class=BaseTask,
            datamodule_class=ExtractionData,
            subclass_mode_model=True,
            save_config_callback=PrintAndSaveConfig,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=42,
            trainer_defaults={
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}},
                "precision": default_precision(),
            },
            args=None if list(args) == sys.argv[1:] else list(args),  # LightningCLI warns when given both
        )
    except Exception as err:  # jsonargparse wraps errors raised while building the objects: unwrap ours
        cause = root_cause(err)
        if cause is not err and isinstance(cause, USER_ERRORS):
            raise cause from None
        raise


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``nerre`` command; ``args`` defaults to ``sys.argv[1:]``."""
    try:
        run(sys.argv[1:] if args is None else args)
    except USER_ERRORS as err:
        print(f"nerre: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def run(args: Sequence[str]) -> Any:
    """Run one ``nerre`` command and return its result (the LightningCLI object for training commands)."""
    args = list(args)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return None
    if args[0] in TRAINING_COMMANDS:
        return run_training(args)
    from jsonargparse import CLI

    commands: dict[str, Any] = {"data": {"stats": stats, "roundtrip": roundtrip}, "evaluate": evaluate}
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
