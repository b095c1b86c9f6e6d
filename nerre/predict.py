"""Prediction: load an adapter once, extract from texts or corpora, write JSONL, spaCy and HTML."""

from __future__ import annotations

import logging
import re
import time
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from nerre.adapter import DECODING_KNOBS, AdapterSettings, load_adapter
from nerre.errors import ConfigError, MissingPathError
from nerre.example import Entity, Example, Relation, Token
from nerre.loaders.options import NO_OPTIONS, ReaderOptions
from nerre.models import inference_dtype
from nerre.prediction_file import Tally, check_partial, partial_path, record_line, write_as_you_go
from nerre.prompt import prompt_ids
from nerre.schema import Schema, read_signatures

log = logging.getLogger(__name__)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class Prediction:
    """What the extractor found in one text.

    Args:
        example: the input text with the predicted entities (character offsets) and relations.
        defects: what the parser had to repair or drop in the model's output (see ``nerre.formulation.DEFECTS``).
        outputs: the raw generated answers (one per window of the text).
    """

    example: Example
    defects: Counter = field(default_factory=Counter)
    outputs: list[str] = field(default_factory=list)

    @property
    def doc(self) -> Any:
        """The prediction as a spaCy ``Doc`` (``doc.ents``, ``doc.spans["nerre"]``, ``doc._.relations``)."""
        from nerre.spacy_export import to_doc

        return to_doc(self.example)[0]

    def to_dict(self) -> dict[str, Any]:
        """The prediction-JSONL record (see the README)."""
        return self.example.to_dict() | {"defects": dict(self.defects)}


class Extractor:
    """A trained adapter ready to extract entities and relations.

    Args:
        model: the base model with the adapter.
        tokenizer: its tokenizer.
        settings: the nerre settings saved with the adapter.
        constrained: faithful decoding: the output can only copy the input and insert configured tags.
            False: plain greedy generation, whose defects are counted. None: constrained where the
            formulation has a grammar (tagged, bio), free otherwise (json).
        batch_size: texts decoded together.
        signatures: constrained decoding lets a relation name only arguments whose labels fit its type's
            signature (saved with the adapter; adapters trained before signatures existed have none);
            False: any two tagged entities.
        signatures_from: take the signatures from this file instead of the adapter's: a types file with
            ``head``/``tail``, or a corpus (e.g. the training data) to infer them from.
        knobs: more :class:`~nerre.decoding.DecodeOptions` (``entity_bias``, ``relation_bias``,
            ``min_entity_score``, ``min_relation_score``, ``scores``, ``temperature``): the precision/recall
            knobs. Constrained decoding takes those not given from the adapter: its ``score_temperature`` and
            the ``decoding`` tuned on dev and saved with it (``AdapterSettings.decoding``).
        model_version: names the adapter in the files written (Label Studio's ``model_version``).
    """

    def __init__(self, model: Any, tokenizer: Any, settings: AdapterSettings, constrained: bool | None = None,
                 batch_size: int = 8, signatures: bool = True, signatures_from: str | Path | None = None,
                 model_version: str = "nerre", **knobs: Any):
        from nerre.decoding import DecodeOptions, FaithfulDecoder, token_table, use_constraints

        if signatures_from is not None:
            schema = Schema(**settings.schema).without_signatures().with_signatures(read_signatures(signatures_from))
            settings = replace(settings, schema=schema.to_dict())
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.model_version = model_version
        self.formulation, self.prompts = settings.build()
        self.constrained = use_constraints(self.formulation, constrained)
        self.batch_size = batch_size
        knobs.setdefault("temperature", settings.score_temperature)
        if self.constrained:
            knobs = settings.decoding | knobs
        self.options = DecodeOptions(constrained=self.constrained, batch_size=batch_size, signatures=signatures,
                                     max_sequence_tokens=settings.max_sequence_tokens, **knobs)
        self.decoder = FaithfulDecoder(model, tokenizer, self.prompts, self.formulation, self.options)
        self.table = token_table(tokenizer) if self.constrained else None
        #: what the score thresholds (``min_entity_score``, ``min_relation_score``) dropped so far, by kind
        self.dropped: Counter = Counter()
        #: the most model tokens of input per window (longer texts are split)
        self.window_tokens = input_window_tokens(settings.max_sequence_tokens,
                                                 len(prompt_ids(tokenizer, self.prompts, "")),
                                                 self.formulation.answer_scale)

    @classmethod
    def load(cls, adapter: str | Path, base_model: str | None = None, constrained: bool | None = None,
             batch_size: int = 8, precision: str = "32-true", merge: bool = False, signatures: bool = True,
             signatures_from: str | Path | None = None, **knobs: Any) -> Extractor:
        """Load an adapter folder written by ``nerre fit`` (its ``adapter/``), or a shipped adapter by name
        (``Extractor.load("conll2003")``; see :func:`nerre.adapter.shipped_adapters`). ``signatures``,
        ``signatures_from`` and ``knobs``: as for the constructor.

        ``merge``: add the LoRA weights into the base weights once (peft's ``merge_and_unload``), so that each
        forward pass runs plain linear layers instead of base + LoRA: faster on CPU, same predictions up to
        float rounding.

        ``precision``: ``32-true`` (default), ``bf16-true`` or ``auto`` (see :func:`nerre.models.inference_dtype`).
        The weights are loaded and merged in float32 and then cast, so a merged bf16 model rounds the sum once."""
        if "dtype" in knobs:  # the name before precision
            dtype = knobs.pop("dtype")
            log.warning("Extractor.load(dtype=...) is renamed precision=...: pass precision='bf16-true' or '32-true'")
            precision = "bf16-true" if dtype == torch.bfloat16 else "32-true"
        dtype = inference_dtype(precision)
        model, tokenizer, settings = load_adapter(adapter, base_model=base_model)
        if merge:
            model = model.merge_and_unload().eval()
        if dtype != torch.float32:
            model = model.to(dtype)
        return cls(model, tokenizer, settings, constrained=constrained, batch_size=batch_size, signatures=signatures,
                   signatures_from=signatures_from, model_version=model_version(adapter), **knobs)

    def __call__(self, texts: str | Sequence[str]) -> Prediction | list[Prediction]:
        """Extract from one text (returns a Prediction) or a list of texts (returns a list)."""
        if isinstance(texts, str):
            return next(self.predict([Example(texts)]))
        return list(self.predict([Example(t) for t in texts]))

    # -- the work ----------------------------------------------------------------------------------
    def predict(self, examples: Iterable[Example], progress: bool = False) -> Iterator[Prediction]:
        """Predictions for ``examples``, in order. Texts longer than the window are split and merged back.

        ``examples`` is read as it is needed (a generator over a large file is never held whole): windows are
        decoded ``8 * batch_size`` at a time and each prediction is yielded as soon as its text is done.
        """
        bar = _progress(len(examples) if isinstance(examples, Sized) else None, progress)  # texts, not windows
        inputs = iter(enumerate(examples))
        pending: deque[tuple[int, Example]] = deque()  # windows read, not yet decoded
        held: dict[int, tuple[Example, int, list[tuple[Example, Counter, str]]]] = {}  # text, windows, results
        done, chunk, exhausted = 0, 8 * self.batch_size, False  # decoded together
        while True:
            while not exhausted and len(pending) < chunk:
                try:
                    i, example = next(inputs)
                except StopIteration:
                    exhausted = True
                    break
                pieces = self.split(example)
                held[i] = (example, len(pieces), [])
                pending.extend((i, piece) for piece in pieces)
            batch = [pending.popleft() for _ in range(min(chunk, len(pending)))]
            if batch:
                pieces = [piece for _, piece in batch]
                outputs = self.generate(pieces)
                read, defects = self.formulation.parse(pieces, outputs)
                self._score(pieces, outputs, read)
                for (i, _), example, piece_defects, output in zip(batch, read, defects, outputs):
                    held[i][2].append((example, piece_defects, output))
            while done in held and len(held[done][2]) == held[done][1]:
                example, _, parts = held.pop(done)
                yield _merge(example, parts)
                bar.update(1)
                done += 1
            if exhausted and not pending:
                break
        bar.close()

    def split(self, example: Example) -> list[Example]:
        """The example as windows of at most ``self.window_tokens`` tokens, cut at sentence ends where possible.

        Each window's ``id`` carries its character offset in the original text, as ``"id@offset"``; windows
        keep the example's own tokens, so tags (and spaCy spans) fall on the same token boundaries.
        """
        text = example.text
        if not text.strip():
            return []
        if len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) <= self.window_tokens:
            return [Example(text, tokens=example.tokens, id=f"{example.id}@0")]  # the corpus's own tokens
        pieces, start = [], 0
        bounds = [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
        for end in bounds:
            if end <= start:
                continue
            for s, e in self._windows(text, start, end):
                piece = text[s:e]
                if piece.strip():  # windows carry no surrounding whitespace; offsets account for it
                    s += len(piece) - len(piece.lstrip())
                    e = s + len(piece.strip())
                    tokens = [Token(t.start - s, t.end - s) for t in example.tokens or [] if s <= t.start and t.end <= e]
                    pieces.append(Example(piece.strip(), tokens=tokens or None, id=f"{example.id}@{s}"))
            start = end
        return pieces

    def _windows(self, text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Cut ``text[start:end]`` into pieces of at most ``window_tokens`` model tokens, at word boundaries."""
        encoding = self.tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        if len(offsets) <= self.window_tokens:
            yield start, end
            return
        words = [start + m.start() for m in re.finditer(r"\S+", text[start:end])]
        token_starts = [start + a for a, _ in offsets]
        piece_start = start
        for w in words[1:]:
            if bisect_left(token_starts, w) - bisect_left(token_starts, piece_start) >= self.window_tokens:
                yield piece_start, w
                piece_start = w
        yield piece_start, end

    def generate(self, windows: list[Example]) -> list[str]:
        """The raw answers for a list of input windows."""
        return self.decoder.generate(windows)

    def _score(self, pieces: list[Example], outputs: list[str], read: list[Example]) -> None:
        """Scores from the last decode (:mod:`nerre.decoding.confidence`), then the score thresholds."""
        from nerre.decoding.confidence import attach_scores, keep_confident

        if self.table is None or not outputs:
            return
        decoder = self.decoder
        attach_scores(self.formulation, self.table, pieces, outputs, decoder.token_ids, decoder.token_logprobs, read)
        for example in read:
            self.dropped.update(keep_confident(example, self.options.min_entity_score, self.options.min_relation_score))


def input_window_tokens(max_sequence_tokens: int, prompt_tokens: int, answer_scale: int = 2) -> int:
    """The most model tokens of input per window: the answer's entity part takes up to ``answer_scale``
    tokens per input token (:attr:`Formulation.answer_scale`), so the input gets ``1 / (1 + answer_scale)``
    of what the prompt leaves of the trained sequence length."""
    return max(16, (max_sequence_tokens - prompt_tokens) // (1 + answer_scale))


def _merge(example: Example, parts: list[tuple[Example, Counter, str]]) -> Prediction:
    """Shift the windows' predictions back to offsets of the whole text."""
    entities: list[Entity] = []
    relations: list[Relation] = []
    defects: Counter = Counter()
    outputs = []
    scores: dict[Entity | Relation, float] = {}
    document: list[float] = []
    for piece, piece_defects, output in parts:
        offset = int(str(piece.id).rsplit("@", 1)[1])
        shift = {e: Entity(e.start + offset, e.end + offset, e.label) for e in piece.entities}
        entities += shift.values()
        moved = [Relation(shift[r.head], shift[r.tail], r.label) for r in piece.relations]
        relations += moved
        scores.update((shift[k] if isinstance(k, Entity) else Relation(shift[k.head], shift[k.tail], k.label), v)
                      for k, v in piece.scores.items())
        if piece.score is not None:
            document.append(piece.score)
        defects.update(piece_defects)
        outputs.append(output)
    merged = Example(example.text, sorted(set(entities)), relations, example.tokens, example.id, scores,
                     min(document, default=None))  # the least confident decision of any window
    return Prediction(merged, defects, outputs)


def model_version(adapter: str | Path) -> str:
    """How written predictions name an adapter (Label Studio's ``model_version``): ``nerre:<name>`` for a
    shipped adapter, else ``nerre:<folder>`` (``nerre:<run>/adapter`` for a run's ``adapter/`` folder)."""
    path = Path(adapter)
    if not path.exists():
        return f"nerre:{adapter}"
    path = path.resolve()
    return f"nerre:{path.parent.name}/{path.name}" if path.name == "adapter" else f"nerre:{path.name}"


def rank_predictions(predictions: list[Prediction], rank: str | None, limit: int | None = None) -> list[Prediction]:
    """``rank="uncertainty"``: the predictions least confident first (document score, lowest first; ties keep
    the input order; documents without a score last), cut to ``limit``; otherwise as they are."""
    if rank == "uncertainty":
        predictions = sorted(predictions, key=lambda p: 2.0 if p.example.score is None else p.example.score)
    return predictions[:limit]


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="predicting", unit="text", disable=not enabled)


# -- reading inputs ------------------------------------------------------------------------------
def read_inputs(path: str | Path, format: str | None = None, options: ReaderOptions = NO_OPTIONS) -> list[Example]:
    """Examples to predict on: raw text (one document per line) or any corpus format nerre reads.

    A file is raw text unless its content is one of the formats (a CoNLL column file only when its lines
    look like columns throughout; see :mod:`nerre.loaders.detect`), or ``format`` says otherwise.
    """
    return list(iter_inputs(path, format, options))


def iter_inputs(path: str | Path, format: str | None = None, options: ReaderOptions = NO_OPTIONS) -> Iterator[Example]:
    """:func:`read_inputs` one example at a time: raw text, JSONL and CoNLL files are read as they are needed
    (memory stays flat however large the file); the other formats are read whole (see
    :func:`nerre.loaders.stream_examples`)."""
    from nerre.loaders import detect_format, stream_examples
    from nerre.loaders.textfile import iter_lines

    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: input file not found; check the path")
    fmt = format or detect_format(path, options, allow_text=True)  # (a missing file, a wrong format: fail now)
    if fmt != "text":
        return stream_examples(path, fmt, options)
    return (Example(line[:-1] if line.endswith("\r") else line, id=f"{path.name}:{n}")
            for n, line in enumerate(iter_lines(path), 1))


# -- the command ---------------------------------------------------------------------------------
_TOLD = (".jsonl", ".spacy", ".conll", ".ann", ".json")  # suffixes that name a format (.json: ask which)
def predict(
    *,
    adapter: str,
    input: str,
    output: str,
    format: str | None = None,
    reader_options: ReaderOptions = NO_OPTIONS,
    to: str | None = None,
    constrained: bool | None = None,
    batch_size: int = 8,
    evaluate: bool = False,
    spacy: str | None = None,
    html: str | None = None,
    base_model: str | None = None,
    limit: int | None = None,
    signatures: bool = True,
    signatures_from: str | None = None,
    rank: str | None = None,
    entity_bias: float | None = None,
    relation_bias: float | None = None,
    min_score: float | None = None,
    min_relation_score: float | None = None,
    resume: bool = False,
    merge: bool = False,
    precision: str = "32-true",
    devices: int | str = 1,
    strategy: str | None = None,
    num_nodes: int = 1,
    accelerator: str = "auto",
) -> dict[str, Any] | None:
    """Extract entities and relations from a file with a trained adapter; write the predictions.

    Args:
        adapter: adapter folder written by ``nerre fit`` (the run folder's ``adapter/``), or the name of an
            adapter shipped with nerre (``nerre.adapter.shipped_adapters()`` lists them).
        input: raw text (one document per line), or any corpus format nerre reads (a BRAT folder of .txt
            files, a Label Studio export ...).
        output: where to write the predictions: prediction JSONL (what ``nerre evaluate`` reads) by default,
            or the format of ``to``.
        format: input format: text, conll, spert, jsonl, json, hf, brat, doccano, labelstudio or spacy;
            detected when omitted.
        reader_options: options of the input's reader.
        to: output format: jsonl (default), brat (a folder of .txt/.ann to correct in brat), labelstudio (tasks
            with the predictions as pre-annotations), doccano, json, spert, conll, hf or spacy; told by the
            suffix of ``output`` when omitted (.jsonl, .spacy, .conll, .ann), else jsonl.
        constrained: faithful decoding (copy the input, insert only configured tags); false: plain greedy
            generation, whose defects are counted; default: constrained where the formulation has a grammar (tagged, bio).
        batch_size: texts per generation batch.
        evaluate: score the predictions against the annotations of the input.
        spacy: also write the predictions as a spaCy DocBin (.spacy).
        html: also write a displaCy HTML page of the entities and relations.
        base_model: use this base model instead of the one recorded with the adapter.
        limit: write only N documents: the first N of the input, or with ``rank`` the first N of the ranking
            (the N to annotate next; every document is predicted to rank them).
        signatures: constrained decoding names only relation arguments whose labels fit the relation type's
            signature (saved with the adapter); false: any two tagged entities.
        signatures_from: use the signatures of this file instead: a types file with head/tail, or a corpus
            (the training data) to infer them from, e.g. for an adapter saved without signatures.
        rank: ``uncertainty``: write the documents least confident first (by the document score, the
            probability of the decoder's least confident decision), so the annotator corrects first what
            teaches the model most; default: input order.
        entity_bias: added to the log-probability of opening an entity tag at each decision: above 0 more
            entities (recall up), below 0 fewer (precision up).
        relation_bias: the same for starting another relation line.
        min_score: keep only the entities (and relations) whose score is at least this (precision up).
        min_relation_score: the threshold for relations, when it should differ from ``min_score``.
            The biases and thresholds not given are the adapter's: 0, unless values tuned on dev were saved
            with it (``benchmarks/tune_decoding.py --save``; the summary's ``decoding`` names those in effect).
        resume: continue an interrupted run from its ``OUTPUT.partial`` file (JSONL output): the texts it holds
            are checked against the input and skipped, the rest appended (see :mod:`nerre.prediction_file`).
        merge: merge the LoRA weights into the base model before predicting (faster; same predictions up to
            float rounding).
        precision: ``32-true`` (default: float32; a text's prediction does not depend on the texts decoded with
            it), ``bf16-true`` (bf16 weights: about 1.4x faster, 2x with ``merge`` and ``batch_size`` 16, on a CPU
            with AMX; F1 within a few tenths, and a prediction can change with its batch) or ``auto`` (bf16 where
            the hardware computes it natively, else float32).
        devices: processes to predict in (Lightning's ``devices``: a number, ``auto``, or GPU ids); more than
            one predicts through Lightning's ``Trainer.predict`` (see :mod:`nerre.predict_ddp`).
        strategy: Lightning strategy of a multi-process run: ``ddp`` (or ``ddp_spawn``); default: ``ddp`` when
            ``devices`` or ``num_nodes`` ask for several processes.
        num_nodes: machines of a multi-process run (Lightning's ``num_nodes``).
        accelerator: Lightning's ``accelerator`` of a multi-process run: ``auto``, ``gpu`` or ``cpu``.

    Raw text, JSONL and CoNLL inputs are read as prediction goes, and JSONL output is written as it goes, so
    memory stays flat however large the input, unless ``evaluate``, ``spacy``, ``html``, another output
    format or several processes need all the texts at once.
    """
    from nerre.loaders import output_format, write_examples

    out_path = Path(output)
    out_format = output_format(out_path, to or ("jsonl" if out_path.suffix.lower() not in _TOLD else None))
    files = (("output", None if out_format in ("brat", "hf") else output), ("spacy", spacy), ("html", html))
    for option, value in files:  # brat and hf write folders
        if value is not None and Path(value).is_dir():
            suffix = "jsonl" if option == "output" else option
            raise ConfigError(f"--{option} {value} is a folder; name the file to write, e.g. "
                              f"{Path(value) / 'predictions'}.{suffix}")
    if rank not in (None, "uncertainty"):
        raise ConfigError(f"--rank {rank!r}: the one ranking is 'uncertainty' (least confident documents first)")
    distributed = str(devices) != "1" or num_nodes > 1 or strategy is not None
    if rank and (resume or distributed or evaluate):
        raise ConfigError("--rank writes the documents to annotate next, after predicting every text: drop --resume, "
                          "--devices and --evaluate (evaluate a run without --rank)")
    if resume and (out_format != "jsonl" or distributed):
        raise ConfigError("--resume continues prediction JSONL written by one process; drop --resume, or write "
                          "JSONL (--to jsonl) with --devices 1")
    if distributed and (out_format != "jsonl" or spacy or html):
        raise ConfigError("several processes write prediction JSONL only; write JSONL, then convert it with `nerre "
                          "data convert` (and drop --spacy and --html)")
    hold = out_format != "jsonl" or evaluate or bool(spacy or html or rank)  # need every prediction at the end
    inputs: Iterable[Example] = iter_inputs(input, format, reader_options)
    if limit is not None and not rank:  # with rank, limit cuts the ranking
        inputs = islice(inputs, limit)
    knobs = {"entity_bias": entity_bias, "relation_bias": relation_bias, "min_entity_score": min_score,
             "min_relation_score": min_score if min_relation_score is None else min_relation_score}
    knobs = {k: v for k, v in knobs.items() if v is not None}  # the others: the adapter's
    loading = dict(adapter=adapter, base_model=base_model, constrained=constrained, batch_size=batch_size,
                   merge=merge, precision=precision, signatures=signatures, signatures_from=signatures_from, **knobs)
    if hold or distributed:
        inputs = list(inputs)
    if distributed:
        from nerre.predict_ddp import predict_distributed

        return predict_distributed(inputs, out_path, evaluate=evaluate, settings=loading, trainer=dict(
            devices=devices, strategy=strategy or "ddp", num_nodes=num_nodes, accelerator=accelerator))
    extractor = Extractor.load(**loading)
    if (rank or any(knobs.values())) and not extractor.constrained:  # (the adapter's knobs apply constrained only)
        raise ConfigError("--rank, the biases and the score thresholds need scores, which only constrained "
                          "decoding gives; drop --constrained false")
    started = time.perf_counter()
    if rank:
        ranked = rank_predictions(list(extractor.predict(inputs, progress=True)), rank, limit)
    tally, predicted = Tally(), []  # predicted: the predictions' examples, when held
    lost = None
    if out_format == "jsonl":
        todo, keep = iter(inputs), None  # (inputs stays the list of gold examples, when held)
        partial = partial_path(out_path)
        if resume and partial.is_file():
            def resumed(record: dict[str, Any], example: Example) -> None:
                tally.add(record)
                if hold:
                    predicted.append(replace(Example.from_dict(record), tokens=example.tokens))

            keep = check_partial(partial, todo, resumed)
            log.warning("%s: resuming after the %d texts it holds", partial, tally.examples)
        elif resume:
            log.warning("%s not found: nothing to resume, every text is predicted", partial)
        elif partial.is_file():
            log.warning("%s (from an interrupted run) is started over; --resume true continues it instead", partial)
        done_before = tally.examples

        def lines() -> Iterator[tuple[str, dict[str, Any]]]:
            for prediction in ranked if rank else extractor.predict(todo, progress=True):
                if hold:
                    predicted.append(prediction.example)
                record = prediction.to_dict()
                yield record_line(record), record

        try:
            write_as_you_go(lines(), out_path, keep, on_record=tally.add)
        except BaseException:
            log.warning("prediction stopped after %d texts; those are in %s: run the same command with --resume "
                        "true to continue", tally.examples, partial)
            raise
    else:
        done_before = 0
        for prediction in ranked if rank else extractor.predict(inputs, progress=True):
            tally.add(prediction.to_dict())
            predicted.append(prediction.example)
        settings = {"predictions": True, "model_version": extractor.model_version} if out_format == "labelstudio" \
            else {}
        lost = write_examples(predicted, out_path, out_format, **settings)
    seconds = time.perf_counter() - started
    new = tally.examples - done_before
    summary: dict[str, Any] = {
        "examples": tally.examples,
        "entities": tally.entities,
        "relations": tally.relations,
        "defects": dict(tally.defects),
        "constrained": extractor.constrained,
        "signatures": extractor.formulation.schema.describe_signatures() if extractor.constrained and signatures
        else None,
        "seconds": round(seconds, 2),
        "sentences_per_s": round(new / seconds, 3) if seconds and new else None,
        "output": str(out_path),
        "format": out_format,
        "model_version": extractor.model_version,
    }
    decoding = {k: getattr(extractor.options, k) for k in DECODING_KNOBS if getattr(extractor.options, k)}
    if decoding:
        summary["decoding"] = decoding
    if done_before:
        summary["resumed after"] = done_before
    if extractor.dropped:
        summary["dropped by the score thresholds"] = dict(extractor.dropped)
    if rank:
        summary["ranked"] = f"{rank}: least confident first, {tally.examples} of {len(inputs)} documents written"
    if lost is not None:
        summary["not carried over"] = lost.lines()
    if evaluate:
        from nerre.metrics import evaluate as score

        symmetric = extractor.formulation.schema.symmetric_relations
        summary["scores"] = score(inputs, predicted, symmetric=symmetric)
    if spacy or html:
        from nerre.spacy_export import render_html, save_docbin, to_docs

        docs, report = to_docs(predicted)
        summary["spacy"] = str(report)
        if not report.ok:
            log.warning("spaCy export: %s", report)
        if spacy:
            save_docbin(docs, spacy)
        if html:
            render_html(docs, html)
    return summary
