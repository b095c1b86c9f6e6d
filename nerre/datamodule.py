"""The training data: prompts and targets tokenized once, length-grouped, dynamically padded."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader

from nerre.errors import ConfigError, DataError, MissingPathError
from nerre.example import Example
from nerre.formulation import Formulation, get_formulation
from nerre.loaders import ReaderOptions, load_examples
from nerre.models import DEFAULT_MODEL, load_tokenizer, resolve_model
from nerre.prompt import PromptBuilder, PromptSettings, prompt_ids
from nerre.resume import EpochSampler, ResumableLoader
from nerre.schema import Schema

log = logging.getLogger(__name__)
IGNORE = -100


def _unique_ids(parts: list[tuple[Path, list[Example]]]) -> None:
    """Keep example ids unique across the files of one split: a file whose ids repeat an earlier file's gets
    its ids prefixed with its file name (``conll04_dev.json:17``)."""
    seen: set[str] = set()
    for k, (path, examples) in enumerate(parts):
        ids = {ex.id for ex in examples if ex.id is not None}
        if k and ids & seen:
            for ex in examples:
                if ex.id is not None:
                    ex.id = f"{path.name}:{ex.id}"
            ids = {ex.id for ex in examples if ex.id is not None}
            log.warning("%s: example ids repeat those of an earlier file of the split; they are prefixed with the "
                        "file name", path)
        seen |= ids


class ExtractionData(LightningDataModule):
    """Corpora for fine-tuning and evaluating a generative extractor.

    Paths are relative to ``data_dir``. The data are read, and checked against the labels, as soon
    as the module is built, so a bad file or label fails before any model is loaded.

    Args:
        train: training corpus (any format ``nerre.loaders`` reads), or a list of files read one after the
            other (e.g. train and dev, the literature's train+dev protocol); error messages name the file.
        val: development corpus (or files); validation generates on it and reports F1. Without it there is no
            dev selection: the adapter of the last step is saved.
        test: test corpus (or files).
        train_dev: train on ``train`` and ``val`` together and validate on nothing (no dev selection; the
            adapter of the last step is saved): the protocol of TANL's and SpERT's CoNLL04 figures.
        data_dir: folder the corpus paths are relative to; default ``$NERRE_DATA_DIR``, else the
            working directory.
        format: corpus format (``conll``, ``spert``, ``jsonl``, ``json``, ``hf``, ``brat``, ``doccano``,
            ``labelstudio``, ``spacy``); detected from the content when None.
        reader_options: options for the reader, the same as every command takes, e.g. ``{label_key: kind}``
            for JSONL (see ``nerre.loaders.ReaderOptions``).
        types_file: SpERT-style types JSON giving label display names (relative to ``data_dir``).
        schema: the labels, with display names and descriptions; overrides ``types_file``. Inferred
            from the training data when neither is given. A relation label may declare its signature, the
            entity labels allowed as its arguments (``{name: Work_For, head: [Peop], tail: [Org]}``); a
            gold training relation that breaks a declared signature stops the run, naming the record.
        infer_signatures: give each relation label without a declared signature the one the training data
            show (the head labels and the tail labels seen with it); it is printed and saved with the adapter,
            and constrained decoding and the candidate-set loss allow only arguments that fit it. False:
            only declared signatures restrict arguments.
        formulation: ``tagged`` (inline tags, then relation triples), ``json`` (records with offsets) or
            ``bio`` (a ``token TAG`` line per token, then relation triples; overlapping entities are left out,
            and counted in a warning).
        prompt: what the prompt contains.
        model: the model whose tokenizer is used (linked to ``model.init_args.model``).
        max_sequence_tokens: longest training sequence (prompt + answer) in tokens. None (the default) fits the
            longest training example, so none is cut. A value that cuts examples reports how many entities
            and relations are lost; one that loses gold relations stops the run unless ``allow_truncation``.
            Validation and test examples are never cut.
        allow_truncation: train even when ``max_sequence_tokens`` cuts gold relations off (they are reported).
        loss_on: ``candidates`` (the answer, each token's cross-entropy over only the tokens the constrained
            decoder could emit there: the formulation's grammar walks each gold answer once, at
            tokenization, and the sets are cached with the dataset; the LM head then runs on the rows of
            its weights those sets use; needs a formulation with a grammar: tagged or bio), ``answer``
            (the answer over the whole vocabulary; prompt tokens get label -100) or ``all`` (the whole
            sequence). None (the default): ``candidates`` where the formulation has a grammar, else
            ``answer``. Choose ``answer`` for an adapter meant for free generation.
        max_train_examples: use only this many training examples (a seeded random subset).
        batch_size: training batch size.
        eval_batch_size: examples per validation and test step (decoded together).
        num_workers: DataLoader workers.
        seed: seed for the training subset, the few-shot examples and the batch order (``nerre fit`` sets
            it to ``seed_everything``).
        cache_dir: where tokenized datasets are cached; default ``~/.cache/nerre/datasets``.
    """

    def __init__(
        self,
        train: str | list[str] | None = None,
        val: str | list[str] | None = None,
        test: str | list[str] | None = None,
        train_dev: bool = False,
        data_dir: str | None = None,
        format: str | None = None,
        reader_options: ReaderOptions | None = None,
        types_file: str | None = None,
        schema: Schema | None = None,
        infer_signatures: bool = True,
        formulation: Literal["tagged", "json", "bio"] = "tagged",
        prompt: PromptSettings | None = None,
        model: str = DEFAULT_MODEL,
        max_sequence_tokens: int | None = None,
        allow_truncation: bool = False,
        loss_on: Literal["candidates", "answer", "all"] | None = None,
        max_train_examples: int | None = None,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 42,
        cache_dir: str | None = None,
    ):
        super().__init__()
        self.data_dir = Path(data_dir or os.environ.get("NERRE_DATA_DIR", ".")).expanduser()
        #: the files of each split (several are read one after the other)
        self.files = {split: [self._path(p) for p in ([paths] if isinstance(paths, str) else paths)]
                      for split, paths in (("train", train), ("val", val), ("test", test)) if paths}
        if train_dev:
            if "train" not in self.files or "val" not in self.files:
                raise ConfigError("data.train_dev trains on data.train and data.val together: set both (the "
                                  "literature's train+dev protocol; no dev selection, the last step's adapter is saved)")
            self.files["train"] += self.files.pop("val")
        if not self.files:
            raise ConfigError("no data: set data.train, data.val or data.test (paths relative to data.data_dir)")
        #: how error messages name each split: its file, or its files joined with " + "
        self.paths = {split: files[0] if len(files) == 1 else " + ".join(map(str, files))
                      for split, files in self.files.items()}
        self.format, self.reader_options = format, ReaderOptions.of(reader_options)
        #: each split's examples per file, in order (``examples`` concatenates them)
        self.parts = {split: [(path, self._read(path)) for path in files] for split, files in self.files.items()}
        for parts in self.parts.values():
            _unique_ids(parts)
        self.examples = {split: [ex for _, examples in parts for ex in examples] for split, parts in self.parts.items()}
        if max_train_examples is not None and "train" in self.examples:
            rng = random.Random(seed)
            train_examples = self.examples["train"]
            self.examples["train"] = rng.sample(train_examples, min(max_train_examples, len(train_examples)))
            kept = {id(ex) for ex in self.examples["train"]}
            self.parts["train"] = [(path, [ex for ex in examples if id(ex) in kept])
                                   for path, examples in self.parts["train"]]
        if schema is None:
            schema = Schema.from_types_file(self._path(types_file)) if types_file else Schema.infer(
                [ex for split in self.examples.values() for ex in split]
            )
        for parts in self.parts.values():
            for path, examples in parts:
                schema.check(examples, str(path))
        for path, examples in self.parts.get("train", []):
            schema.check_signatures(examples, str(path))  # declared ones: the data must keep them
        if infer_signatures and "train" in self.examples:
            schema = schema.with_signatures(Schema.infer_signatures(self.examples["train"]))
        if schema.signatures:
            from lightning.pytorch.utilities import rank_zero_info

            rank_zero_info("relation signatures (argument labels the decoder allows; declared in data.schema or "
                           "the types file, else seen in the training data):\n  "
                           + "\n  ".join(schema.describe_signatures()))
        self.schema = schema
        self._report_unfit_relations()
        self.formulation: Formulation = get_formulation(formulation, schema)
        if loss_on is None:
            loss_on = "candidates" if self.formulation.constrainable else "answer"
        elif loss_on == "candidates" and not self.formulation.constrainable:
            raise ConfigError(f"data.loss_on: candidates needs a formulation with a grammar (tagged, bio), not "
                              f"{formulation!r}; use data.loss_on: answer")
        self._check_targets()
        for split, examples in self.examples.items():
            self._report_losses(split, examples)
        self.prompt_settings = prompt or PromptSettings()
        shots = random.Random(seed).sample(self.examples.get("train", []), min(self.prompt_settings.few_shot,
                                                                              len(self.examples.get("train", []))))
        self.prompts = PromptBuilder(self.formulation, self.prompt_settings, shots)
        self.model_name = model
        self.tokenizer = load_tokenizer(resolve_model(model))
        self.max_sequence_tokens, self.allow_truncation, self.loss_on = max_sequence_tokens, allow_truncation, loss_on
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.seed = seed
        self.cache_dir = Path(cache_dir or Path.home() / ".cache" / "nerre" / "datasets").expanduser()
        self.datasets: dict[str, Any] = {}
        self.truncated: dict[str, int] = {}
        #: training examples whose gold answer leaves the grammar (``loss_on: candidates``): from that token on,
        #: their loss normalises over the whole vocabulary
        self.outside_grammar: list[str] = []
        self._table: Any = None

    def _path(self, path: str) -> Path:
        p = Path(path).expanduser()
        p = p if p.is_absolute() else self.data_dir / p
        if not p.exists():
            raise MissingPathError(f"{p}: no such file; check the path or data_dir (now {self.data_dir})")
        return p

    def _read(self, path: Path) -> list[Example]:
        return load_examples(path, self.format, self.reader_options)

    def _check_targets(self) -> None:
        """Every training example must have a target: fail now, naming it, rather than inside tokenization."""
        for path, examples in self.parts.get("train", []):
            for example in examples:
                try:
                    self.formulation.encode(example)
                except ValueError as err:
                    raise DataError(path, str(err)) from None

    def _report_unfit_relations(self) -> None:
        """Warn about dev and test relations whose arguments break the signatures: they cannot be predicted."""
        for split in ("val", "test"):
            unfit = Counter(r.label for ex in self.examples.get(split, []) for r in ex.relations
                            if not self.schema.fits(r.label, r.head.label, r.tail.label))
            if unfit:
                total = sum(len(ex.relations) for ex in self.examples[split])
                log.warning("%s: %d of %d gold relations break the relation signatures (%s), so constrained decoding "
                            "cannot predict them; declare wider head/tail in data.schema, or set "
                            "data.infer_signatures false", self.paths[split], sum(unfit.values()), total,
                            ", ".join(f"{label}: {n}" for label, n in sorted(unfit.items())))

    def _report_losses(self, split: str, examples: list[Example]) -> None:
        """Warn about the annotations of ``split`` that the formulation's answers cannot hold."""
        lost: Counter = Counter()
        for example in examples:
            lost.update(self.formulation.representable(example)[1])
        if lost:
            entities = sum(len(ex.entities) for ex in examples)
            relations = sum(len(ex.relations) for ex in examples)
            kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(lost.items()))
            log.warning(
                "%s: the %s formulation cannot hold every annotation (%d entities, %d relations); it leaves out "
                "%s. They are missing from the answers the model learns and count as misses in scores; the "
                "tagged formulation holds them all", self.paths[split], self.formulation.name, entities, relations,
                kinds)

    # -- settings an adapter needs to be reloaded ------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Everything prediction needs to rebuild the prompts and decode the outputs."""
        return {
            "formulation": self.formulation.name,
            "schema": self.schema.to_dict(),
            "prompt": asdict(self.prompt_settings),
            "shots": [ex.to_dict() | {"tokens": [[t.start, t.end] for t in ex.tokens or []]}
                      for ex in self.prompts.shots],
            "max_sequence_tokens": self.max_sequence_tokens,
        }

    # -- tokenization ------------------------------------------------------------------------
    def prompt_ids(self, text: str) -> list[int]:
        """Token ids of the prompt for ``text`` (the answer follows them)."""
        return prompt_ids(self.tokenizer, self.prompts, text)

    def answer_ids(self, example: Example) -> list[int]:
        """Token ids of the target for ``example``, ending with the end-of-sequence token."""
        ids = self.tokenizer(self.formulation.encode(example), add_special_tokens=False)["input_ids"]
        return ids + [self.tokenizer.eos_token_id]

    def _tokenize(self, row: dict[str, Any]) -> dict[str, Any]:
        example = Example.from_dict(row)
        prompt, answer = self.prompt_ids(example.text), self.answer_ids(example)
        labels = (list(prompt) if self.loss_on == "all" else [IGNORE] * len(prompt)) + answer
        out = {"input_ids": prompt + answer, "labels": labels, "prompt_length": len(prompt)}
        if self.loss_on == "candidates":
            out["candidates"], out["candidate_sizes"] = self.candidate_sets(example, answer)
        return out

    def candidate_sets(self, example: Example, answer: list[int]) -> tuple[list[int], list[int]]:
        """The tokens the grammar allows at each position of ``answer`` (its gold token ids), flat, and the
        size of each set; size 0 (the whole vocabulary) from where the gold answer leaves the grammar."""
        from nerre.decoding import token_table
        from nerre.formulation import OutsideGrammar

        if self._table is None:
            self._table = token_table(self.tokenizer)
        try:
            sets = self.formulation.grammar(example, self._table).candidates(answer)
        except OutsideGrammar as error:
            sets = error.allowed[: error.position]
        sets += [[]] * (len(answer) - len(sets))
        return [token for allowed in sets for token in allowed], [len(allowed) for allowed in sets]

    def _fingerprint(self, split: str) -> str:
        digest = hashlib.sha256()  # the examples as read: edited .ann files or other reader options change it
        for example in self.examples[split]:
            digest.update(json.dumps(example.to_dict(), ensure_ascii=False).encode())
        settings = {k: v for k, v in self.settings().items() if k != "max_sequence_tokens"}  # sequences are stored whole
        settings |= {"model": self.model_name, "loss_on": self.loss_on, "split": split,
                     "ids": [ex.id for ex in self.examples[split]], "vocab": len(self.tokenizer),
                     "tokenizer": self.tokenizer.name_or_path, "version": 2}
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:20]

    def tokenized(self, split: str) -> Any:
        """The split as a tokenized ``datasets.Dataset`` of whole sequences (computed once, then read from the
        cache). For ``train`` this also settles ``max_sequence_tokens`` (see the class documentation)."""
        if split not in self.datasets:
            from nerre.loaders import to_dataset

            self.cache_dir.mkdir(parents=True, exist_ok=True)
            cache = self.cache_dir / f"{split}-{self._fingerprint(split)}.arrow"
            ds = to_dataset(self.examples[split]).map(
                self._tokenize, cache_file_name=str(cache), load_from_cache_file=True,
                desc=f"tokenizing {split}", remove_columns=["tokens"], new_fingerprint=cache.stem,
            )
            if self.loss_on == "candidates" and split == "train":
                self._report_outside_grammar(ds)
            if split == "train":
                self._fit_max_sequence_tokens(ds)
            self.datasets[split] = ds
        return self.datasets[split]

    def _report_outside_grammar(self, ds: Any) -> None:
        """Say which training answers leave the grammar (their loss falls back to the whole vocabulary there),
        and why the first does; refuse when most do, since the fallback then costs the whole vocabulary's
        logits for most answer tokens and the adapter could not predict under constrained decoding anyway."""
        from nerre.formulation.grammar import why_outside

        examples = self.examples["train"]
        outside = [i for i, sizes in enumerate(ds["candidate_sizes"]) if 0 in sizes]
        self.outside_grammar = [examples[i].id or str(i) for i in outside]
        if not outside:
            return
        shown = ", ".join(self.outside_grammar[:5]) + (" ..." if len(outside) > 5 else "")
        first = examples[outside[0]]
        why = why_outside(self.formulation.grammar(first), self.formulation.encode(first)) or "at the token level"
        message = (f"{self.paths['train']}: {len(outside)} of {len(examples)} gold answers leave the grammar of "
                   f"constrained decoding ({shown}); the first, {self.outside_grammar[0]}, at {why}")
        if 2 * len(outside) > len(examples):
            raise ConfigError(f"{message}. Most answers cannot be written by the constrained decoder, so the "
                              "candidate-set loss would fall back to the whole vocabulary for most tokens: check "
                              "the data with `nerre data stats` (grammar), or set data.loss_on answer to train "
                              "without the grammar")
        log.warning("%s; from that token on their loss normalises over the whole vocabulary", message)

    def _fit_max_sequence_tokens(self, ds: Any) -> None:
        """Set ``max_sequence_tokens`` to the longest training sequence, or report (and maybe refuse) what it cuts."""
        lengths = [len(ids) for ids in ds["input_ids"]]
        longest = max(lengths, default=1)
        if self.max_sequence_tokens is None:
            self.max_sequence_tokens = longest
            log.info("max_sequence_tokens fits the longest training example: %d tokens", longest)
        cut = [i for i, n in enumerate(lengths) if n > self.max_sequence_tokens]
        self.truncated["train"] = len(cut)
        if not cut:
            return
        examples = self.examples["train"]
        kept = [ds[i]["input_ids"][ds[i]["prompt_length"] : self.max_sequence_tokens] for i in cut]
        found, _ = self.formulation.parse([examples[i] for i in cut],
                                          [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in kept])
        lost_entities = sum(len(set(examples[i].entities) - set(got.entities)) for i, got in zip(cut, found))
        lost_relations = sum(len(set(examples[i].relations) - set(got.relations)) for i, got in zip(cut, found))
        entities = sum(len(set(ex.entities)) for ex in examples)
        relations = sum(len(set(ex.relations)) for ex in examples)
        message = (
            f"{self.paths['train']}: max_sequence_tokens={self.max_sequence_tokens} cuts {len(cut)} of "
            f"{len(lengths)} training examples (the longest has {longest} tokens): {lost_entities} of {entities} entities and "
            f"{lost_relations} of {relations} relations are never trained on"
        )
        if lost_relations and not self.allow_truncation:
            raise ConfigError(f"{message}; leave data.max_sequence_tokens unset to fit the longest example, or set "
                              "data.allow_truncation true to train without them")
        log.warning("%s; leave data.max_sequence_tokens unset to fit the longest example", message)

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"]}.get(stage or "", list(self.paths))
        for split in splits:
            if split in self.paths and split == "train":
                self.tokenized(split)

    # -- loaders -----------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:

        if "train" not in self.paths:
            raise ConfigError("fitting needs training data: set data.train")
        columns = ["input_ids", "labels"] + (["candidates", "candidate_sizes"] if self.loss_on == "candidates" else [])
        ds = self.tokenized("train").select_columns(columns)
        lengths = [min(len(x), self.max_sequence_tokens) for x in ds["input_ids"]]
        sampler = EpochSampler(self.batch_size, lengths, self.seed, self._epoch)
        return ResumableLoader(ds, batch_size=self.batch_size, sampler=sampler, collate_fn=self._collate_train,
                               num_workers=self.num_workers, position=self._position, generator=self._generator())

    def _generator(self) -> torch.Generator:
        """A loader's own generator: starting an epoch then draws nothing from the global one, which dropout
        uses, so a resumed run draws the same dropout masks as one never interrupted."""
        return torch.Generator().manual_seed(self.seed)

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer else 0

    def _position(self) -> dict[str, int]:
        """Where training stands in the data: the epoch, and the batches of it already trained on."""
        loop = self.trainer.fit_loop
        return {"epoch": self.trainer.current_epoch, "batches": loop.epoch_loop.batch_progress.current.processed}

    def _collate_train(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        cut = [{k: r[k][: self.max_sequence_tokens] for k in ("input_ids", "labels")} for r in rows]
        width = max(len(r["input_ids"]) for r in cut)
        pad = self.tokenizer.pad_token_id
        batch = {
            "input_ids": [r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in cut],
            "attention_mask": [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in cut],
            "labels": [r["labels"] + [IGNORE] * (width - len(r["input_ids"])) for r in cut],
        }
        out = {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
        if "candidates" in rows[0]:
            out |= collate_candidates(rows, [sum(label != IGNORE for label in r["labels"][1:]) for r in cut])
        return out

    def _generation_loader(self, split: str) -> DataLoader:
        """Batches of example indices: validation and test generate from the examples themselves."""
        if split not in self.paths:
            raise ConfigError(f"no {split} data: set data.{split}")
        return DataLoader(range(len(self.examples[split])), batch_size=self.eval_batch_size, shuffle=False,
                          num_workers=self.num_workers, generator=self._generator())

    def val_dataloader(self) -> DataLoader | list:
        """The dev set; none (no validation, nothing selected on dev) when fitting without ``data.val``."""
        if "val" not in self.paths and self.trainer is not None and self.trainer.state.fn == "fit":
            return []  # fitting without dev data: no validation, no dev selection (the last step's adapter is saved)
        return self._generation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._generation_loader("test")


def collate_candidates(rows: list[dict[str, list[int]]], kept: list[int]) -> dict[str, torch.Tensor]:
    """The candidate sets of the first ``kept[i]`` answer positions of each row, for the candidate-set loss:
    ``candidate_vocab`` (the sorted ids any of them allows), ``candidate_allowed`` (``[positions, vocab]``)
    and ``candidate_full`` (positions that normalise over the whole vocabulary)."""
    sets: list[list[int]] = []
    for row, n in zip(rows, kept):
        at = 0
        for size in row["candidate_sizes"][:n]:
            sets.append(row["candidates"][at : at + size])
            at += size
    vocab = sorted({token for allowed in sets for token in allowed})
    column = {token: i for i, token in enumerate(vocab)}
    allowed = torch.zeros(len(sets), len(vocab), dtype=torch.bool)
    for position, tokens in enumerate(sets):
        allowed[position, [column[t] for t in tokens]] = True
    return {"candidate_vocab": torch.tensor(vocab, dtype=torch.long), "candidate_allowed": allowed,
            "candidate_full": torch.tensor([not tokens for tokens in sets], dtype=torch.bool)}
