"""The ``nerre`` command: ``fit``/``validate``/``test`` (LightningCLI), ``data``, ``evaluate``, ``predict``, ``serve``."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from nerre.errors import NerreError
from nerre.loaders.options import NO_OPTIONS, ReaderOptions, ReadNotes

TRAINING_COMMANDS = ("fit", "validate", "test")

USAGE = """usage: nerre COMMAND [options]

commands:
  fit --config FILE        fine-tune a LoRA adapter (LightningCLI; --help for all options)
  validate --config FILE   generate on the dev split and score it
  test --config FILE       generate on the test split and score it
  data stats PATH          examples, tokens, entities and relations per type, and what reading converted (JSON)
  data roundtrip PATH      check that parse(encode(x)) reproduces every example (JSON)
  data convert IN OUT [--to FORMAT]
                           write a corpus in another format, counting what the target cannot hold
  evaluate --gold PATH --pred PATH [--breakdown]
                           precision, recall and F1 of predictions (JSON); --breakdown: why relations and
                           entities are missed or wrong
  predict --adapter DIR --input PATH --output PATH
                           extract entities and relations with a trained adapter
  serve --adapter DIR [--port 8000]
                           serve predictions over HTTP (LitServe; pip install 'nerre[serve]')

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


def stats(path: str, format: str | None = None, reader_options: ReaderOptions = NO_OPTIONS,
          formulation: str = "tagged", types_file: str | None = None) -> dict[str, Any]:
    """Count examples, tokens, entities and relations (per label) in a corpus, say what reading converted, and
    how many gold answers the grammar of constrained decoding accepts (with the first few it does not, and why).

    Args:
        path: corpus file or folder (BRAT folder, saved Hugging Face dataset).
        format: conll, spert, jsonl, json, hf, brat, doccano, labelstudio or spacy; detected when omitted.
        reader_options: options of the reader (field names, offsets, tag scheme ...).
        formulation: the formulation whose grammar is checked: tagged or bio (json has none).
        types_file: SpERT-style types JSON for the labels (inferred from the corpus when omitted).
    """
    from nerre.formulation import get_formulation
    from nerre.formulation.grammar import grammar_coverage
    from nerre.schema import Schema

    fmt, examples, notes = _read(path, format, reader_options)
    entities = Counter(e.label for ex in examples for e in ex.entities)
    relations = Counter(r.label for ex in examples for r in ex.relations)
    schema = Schema.from_types_file(types_file) if types_file else Schema.infer(examples)
    return {
        "format": fmt,
        "examples": len(examples),
        "tokens": sum(len(ex.tokens or []) for ex in examples),
        "entities": dict(sorted(entities.items())),
        "relations": dict(sorted(relations.items())),
        "converted": notes.lines(),
        "grammar": grammar_coverage(get_formulation(formulation, schema), examples),
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
             types_file: str | None = None, symmetric: list[str] | None = None, breakdown: bool = False,
             breakdown_dir: str | None = None, signatures_from: str | None = None, min_score: float | None = None,
             min_relation_score: float | None = None) -> dict[str, Any]:
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
        breakdown: add an error breakdown (``nerre.breakdown``): relation errors split into missed with both
            entities right, a wrong argument entity, the wrong pair, reversed, the wrong label and against the
            signature, the recall given correct entities, and entity errors split into boundary and type
            errors. It is added to the JSON under ``breakdown``, and printed as tables on stderr.
        breakdown_dir: also write the breakdown to this folder as ``breakdown.json`` and ``breakdown.md``
            (implies ``breakdown``).
        signatures_from: where the breakdown takes relation signatures from: a types file with head/tail, or
            a corpus (the training data) to infer them from; default: ``types_file`` where it declares them,
            else inferred from the gold.
        min_score: score only the predicted entities (and relations) whose score is at least this; relations
            lose the entities dropped. Needs predictions with scores (``nerre predict`` writes them).
        min_relation_score: the threshold for relations, when it should differ from ``min_score``.
    """
    from nerre.loaders import detect_format, load_examples
    from nerre.loaders.jsonl import read_predictions
    from nerre.metrics import evaluate as score
    from nerre.schema import Schema

    symmetric_labels = set(symmetric or [])
    types = Schema.from_types_file(types_file) if types_file else None
    if types:
        symmetric_labels |= types.symmetric_relations
    gold_examples = load_examples(gold, gold_format, gold_options)
    if pred_options == NO_OPTIONS and (pred_format or detect_format(pred)) == "jsonl":
        predictions = read_predictions(pred)  # nerre's own records: those without an id pair by position
    else:
        predictions = load_examples(pred, pred_format, pred_options)
    kept = _keep_confident(pred, predictions, min_score, min_relation_score)
    result = score(gold_examples, predictions, symmetric=symmetric_labels, gold_source=gold, pred_source=pred)
    if breakdown or breakdown_dir:
        from nerre.breakdown import breakdown_markdown, error_breakdown, write_breakdown
        from nerre.schema import read_signatures

        signatures, source = None, None
        if signatures_from:
            signatures, source = read_signatures(signatures_from), f"from {signatures_from}"
        elif types and types.signatures:
            signatures, source = types.signatures, f"declared in {types_file}"
        result["breakdown"] = error_breakdown(gold_examples, predictions, symmetric_labels, signatures, source,
                                              gold_source=gold, pred_source=pred)
        print(breakdown_markdown(result["breakdown"], f"Error breakdown of {pred}"), file=sys.stderr)
        if breakdown_dir:
            write_breakdown(result["breakdown"], breakdown_dir, f"Error breakdown of {pred}")
    return result | kept


def _keep_confident(pred: str, predictions: list[Any], min_score: float | None,
                    min_relation_score: float | None) -> dict[str, Any]:
    """Apply ``--min_score`` to the predictions in place; what was dropped, for the summary."""
    from nerre.decoding.confidence import keep_confident
    from nerre.errors import ConfigError

    if min_score is None and min_relation_score is None:
        return {}
    if not any(p.scores for p in predictions):
        raise ConfigError(f"--min_score: {pred} holds no scores; score predictions of nerre predict (constrained "
                          "decoding writes a score on every entity and relation)")
    entity_min = min_score or 0.0
    relation_min = entity_min if min_relation_score is None else min_relation_score
    dropped: Counter = Counter()
    unscored = 0
    for p in predictions:
        unscored += sum(1 for k in [*p.entities, *p.relations] if k not in p.scores)
        dropped.update(keep_confident(p, entity_min, relation_min))
    summary = {"min_score": entity_min, "min_relation_score": relation_min, "dropped": dict(dropped)}
    if unscored:
        summary["kept without a score"] = unscored
    return summary


def _print_json(result: Any) -> None:
    print(json.dumps(result, indent=2, ensure_ascii=False))


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
        from nerre.training_cli import run_training  # imports Lightning: only for training commands

        return run_training(args)
    from jsonargparse import CLI

    commands: dict[str, Any] = {"data": {"stats": stats, "roundtrip": roundtrip, "convert": convert},
                                "evaluate": evaluate}
    if args[0] == "predict":
        from nerre.predict import predict

        commands["predict"] = predict
    if args[0] == "serve":
        from nerre.serve import serve

        commands["serve"] = serve
    if args[0] not in commands:
        print(f"nerre: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    result = CLI(commands, args=args, as_positional=True)
    if isinstance(result, dict):
        _print_json(result)
    return result


if __name__ == "__main__":
    main()
