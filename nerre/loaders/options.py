"""The one set of reader options every command takes, and the notes a reader keeps of what it converted.

:class:`ReaderOptions` is defined once; ``nerre data stats|roundtrip|convert`` and ``nerre predict`` take it
as ``--reader_options.NAME``, ``nerre evaluate`` as ``--gold_options.NAME`` and ``--pred_options.NAME``, and
``nerre fit`` as ``data.reader_options.NAME``. An option left unset keeps the reader's default; an option the
chosen format does not use is an error that names the options it does use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Offsets = Literal["auto", "chars", "utf16"]
Join = Literal["auto", "space", "none"]
TagErrors = Literal["raise", "drop"]


@dataclass(frozen=True)
class ReaderOptions:
    """How to read a corpus file. Unset options keep each reader's default.

    Args:
        scheme: conll, hf: tag scheme, ``auto`` (detected), ``iob1``, ``iob2`` or ``bioes``/``bilou``.
        tag_column: conll: index of the tag column (negative counts from the end; default -1).
        text_column: conll: index of the token column (default 0).
        separator: conll: column separator (default: a tab if the first token line has one, else whitespace).
        join: conll: how the tokens of a sentence make its text: ``space`` (one space between tokens),
            ``none`` (no spaces: a character-per-line file of a script written without spaces, such as
            Chinese, whose text never had spaces between characters) or ``auto`` (default: ``none`` when
            every token is one character and most are Chinese, Japanese, Thai, Lao, Khmer or Myanmar;
            said in the summary).
        tag_errors: conll: a tag sequence the scheme does not allow (an entity left open, an I- or E-
            without its B-): ``raise`` (default: stop, naming the line) or ``drop`` (leave out the entity it
            breaks, read its tokens as O, and count it in the summary with the first line).
        split: hf: which split of a DatasetDict.
        tokens_column: hf: column with the words (default ``tokens``).
        tags_column: hf: column with the tags (default ``ner_tags``).
        text_field: jsonl, json, doccano, labelstudio: record field (Label Studio: ``data`` field) holding
            the text (default: ``text``, else ``full_text`` (Presidio), ``data`` (old doccano), or the only
            string field of a Label Studio task).
        spans_field: jsonl, json: record field holding the list of spans (default ``entities``, else ``spans``).
        label_key: jsonl, json: key of a span's label (default: from the first span: ``label`` or
            ``entity_type``).
        value_key: jsonl, json: key of a span's text, checked against the text (``text`` or ``entity_value``).
        start_key: jsonl, json: key of a span's start offset (``start`` or ``start_position``).
        end_key: jsonl, json: key of a span's end offset, exclusive (``end`` or ``end_position``).
        relations_field: jsonl, json: record field holding relations ``{head, tail, label}`` (default
            ``relations``).
        offsets: doccano, labelstudio: what offsets count: ``chars`` (code points), ``utf16`` (UTF-16 code
            units, as JavaScript counts: an emoji counts 2) or ``auto`` (default: decided from the file, and
            said in the summary).
        trim_spans: jsonl, json, doccano, labelstudio, brat: trim white space at the ends of a span to its
            text (default true; false keeps spans as drawn, which constrained decoding cannot write). Either
            way it is counted in the summary; spans of white space only are dropped (see
            :mod:`nerre.loaders.spans`).
        spans_key: spacy: the ``doc.spans`` key holding the entities (default ``nerre`` when present, else
            ``doc.ents``).
    """

    scheme: str | None = None
    tag_column: int | None = None
    text_column: int | None = None
    separator: str | None = None
    join: Join | None = None
    tag_errors: TagErrors | None = None
    split: str | None = None
    tokens_column: str | None = None
    tags_column: str | None = None
    text_field: str | None = None
    spans_field: str | None = None
    label_key: str | None = None
    value_key: str | None = None
    start_key: str | None = None
    end_key: str | None = None
    relations_field: str | None = None
    offsets: Offsets | None = None
    trim_spans: bool | None = None
    spans_key: str | None = None

    @classmethod
    def names(cls) -> list[str]:
        """Every option name."""
        return [f.name for f in fields(cls)]

    @classmethod
    def of(cls, options: ReaderOptions | dict[str, Any] | None = None, **more: Any) -> ReaderOptions:
        """Options from a ReaderOptions, a dict (a config's ``reader_options``) and keyword arguments.

        Raises:
            nerre.errors.ConfigError: for a name that is not a reader option.
        """
        from nerre.errors import ConfigError

        given = dict(options.given() if isinstance(options, ReaderOptions) else (options or {}))
        given.update(more)
        unknown = sorted(set(given) - set(cls.names()))
        if unknown:
            raise ConfigError(
                f"unknown reader option(s) {', '.join(unknown)}; the reader options are {', '.join(cls.names())}"
            )
        return cls(**given)

    def given(self) -> dict[str, Any]:
        """The options that are set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


NO_OPTIONS = ReaderOptions()
"""Every option unset (a default argument for functions that take reader options)."""


@dataclass
class ReadNotes:
    """What a reader (or writer) converted, ignored or could not carry, counted; never silent.

    ``add`` counts one occurrence of a kind of thing, keeping where the first one was; ``say`` records a
    decision (such as the offset units used). ``str()`` gives the one summary line.
    """

    counts: Counter = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)

    def add(self, what: str, where: str | None = None, n: int = 1) -> None:
        """Count ``n`` of ``what`` (a phrase such as ``"notes (#) ignored"``), the first seen at ``where``."""
        self.counts[what] += n
        if where is not None:
            self.first.setdefault(what, where)

    def say(self, decision: str) -> None:
        """Record a decision the reader took for the whole file."""
        if decision not in self.decisions:
            self.decisions.append(decision)

    def __bool__(self) -> bool:
        return bool(self.counts or self.decisions)

    def lines(self) -> list[str]:
        """One entry per decision and per kind counted, e.g. ``"2 discontinuous entities ... (first: a.ann:5)"``."""
        out = list(self.decisions)
        for what, n in self.counts.items():
            where = f" (first: {self.first[what]})" if what in self.first else ""
            out.append(f"{n} {what}{where}")
        return out

    def __str__(self) -> str:
        return "; ".join(self.lines())

    def update(self, other: ReadNotes) -> None:
        """Add ``other``'s counts and decisions to these."""
        for what, n in other.counts.items():
            self.add(what, other.first.get(what), n)
        for decision in other.decisions:
            self.say(decision)
