"""What every formulation provides: an example becomes a target text; generated text becomes examples.

One way leads from generated answers back to annotations: :meth:`Formulation.parse` (every
caller: the CLI, training, prediction, benchmarks). A formulation whose output can be constrained
says so by returning a :class:`~nerre.formulation.grammar.Grammar` from :meth:`Formulation.grammar`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nerre.example import Entity, Example, Relation
from nerre.schema import Schema

if TYPE_CHECKING:
    from nerre.formulation.grammar import Grammar
    from nerre.vocabulary import TokenTable

#: Every defect a parser can count, with what it means. Parsers never raise on model output.
DEFECTS = {
    "unknown_label": "a tag or record names a label outside the configured set",
    "unclosed_tag": "an opening tag is never closed",
    "unopened_tag": "a closing tag has no matching opening tag",
    "crossing_tags": "tags cross instead of nesting",
    "text_drift": "the text around the tags differs from the input",
    "hallucinated_entity": "an entity's text is not in the input at the place the output puts it",
    "empty_entity": "a tag pair encloses no text",
    "split_character": "a tag falls inside a character as a reader sees it (a letter and its combining accent, "
                       "an emoji sequence); the entity is widened to whole characters",
    "missing_relations": "the relation section is absent",
    "malformed_relation": "a relation line cannot be read as head | label | tail",
    "truncated_relations": "the relation section ends in an incomplete line",
    "unknown_relation": "a triple names a relation type outside the configured set",
    "dangling_argument": "a triple names no tagged entity",
    "ambiguous_argument": "a triple's argument matches several tagged entities",
    "invalid_json": "the output is not valid JSON",
    "wrong_offsets": "an entity's offsets do not point at its value in the input",
    "token_drift": "the tokens listed (bio) differ from the input's tokens",
    "malformed_tag": "a token line (bio) has no tag, or a tag that is not O, B-type or I-type",
    "invalid_transition": "an I-type tag (bio) does not continue an entity of its type (it follows O, "
    "another type, or nothing); it is read as B-type",
}

Source = Example | str
"""What an answer is generated for and parsed against: an example (whose tokens tell where tags may go,
and which the bio formulation lists) or a plain text (tokenized by :func:`nerre.example.tokenize`)."""


def source_text(source: Source) -> str:
    """The text of a source."""
    return source if isinstance(source, str) else source.text


@dataclass
class ParsedAnswer:
    """What one generated answer says about its source.

    Args:
        entities: recovered entities, mapped to character offsets of the source text.
        relations: recovered relations between those entities.
        defects: how many times each defect (see :data:`DEFECTS`) occurred.
    """

    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    defects: Counter = field(default_factory=Counter)

    def as_example(self, source: Source) -> Example:
        """The prediction as an :class:`Example` over ``source`` (keeping its tokens and id)."""
        if isinstance(source, str):
            return Example(source, self.entities, self.relations)
        return Example(source.text, self.entities, self.relations, source.tokens, source.id)


class Formulation(ABC):
    """Turns examples into target texts and generated answers back into annotations.

    Args:
        schema: the labels the target may use.
    """

    #: the name configs use to pick this formulation
    name: str = ""
    #: about how many model tokens the answer's entity part takes per token of the input, at most;
    #: it sizes the generation budget and the windows long texts are cut into
    answer_scale: int = 2

    def __init__(self, schema: Schema):
        self.schema = schema
        self._entity_by_display = {label.display: label.name for label in schema.entities}
        self._relation_by_display = {label.display: label.name for label in schema.relations}

    @abstractmethod
    def encode(self, example: Example) -> str:
        """The text the model should generate for ``example``."""

    @abstractmethod
    def parse_answer(self, source: Source, answer: str) -> ParsedAnswer:
        """Recover annotations of ``source`` from one generated ``answer``; never raises on bad output."""

    @abstractmethod
    def instruction(self) -> str:
        """One paragraph telling the model what output format to produce."""

    def representable(self, example: Example) -> tuple[Example, Counter]:
        """The part of ``example`` that this formulation's answers can hold, and what it leaves out, by kind.

        ``encode`` writes exactly that part; all of it comes back from ``parse``. Only the bio
        formulation leaves anything out (overlapping entities, see :mod:`nerre.formulation.bio`).
        """
        return example, Counter()

    def parse(self, sources: Sequence[Source], answers: Sequence[str]) -> tuple[list[Example], list[Counter]]:
        """Read generated answers: for each source, an example with the entities and relations found
        (the source's text, tokens and id kept) and the defects of its answer (see :data:`DEFECTS`)."""
        if len(sources) != len(answers):
            raise ValueError(f"{len(sources)} sources but {len(answers)} answers")
        examples, defects = [], []
        for source, answer in zip(sources, answers):
            parsed = self.parse_answer(source, answer)
            examples.append(parsed.as_example(source))
            defects.append(parsed.defects)
        return examples, defects

    def roundtrip(self, example: Example) -> Example:
        """``parse(encode(example))``: what the formulation reads back from its own target."""
        return self.parse([example], [self.encode(example)])[0][0]

    def grammar(self, source: Source, vocabulary: TokenTable | None = None, **limits: Any) -> Grammar | None:
        """The answers this formulation accepts for ``source``, for constrained decoding and for
        training on the allowed tokens; None when its output cannot be constrained (the default).

        Args:
            source: the text, or an example whose tokens tell where markup may go.
            vocabulary: the byte strings of the token ids (``nerre.decoding.token_table(tokenizer)``),
                for the token level (``allowed``, ``advance``, ``candidates``).
            limits: grammar-specific limits (the tagged grammar: ``max_nesting``, ``max_relations``,
                ``signatures``).
        """
        return None

    def answer_spans(self, source: Source, answer: str, entities: list[Entity]
                     ) -> tuple[dict[Entity, tuple[int, int]], list[tuple[Relation, tuple[int, int]]]] | None:
        """Where in ``answer`` (character ranges) each entity and relation was written, for scoring the
        decisions that wrote it (:mod:`nerre.decoding.confidence`); None where the formulation cannot
        tell (the default: such predictions get a document score only)."""
        return None

    @property
    def constrainable(self) -> bool:
        """Whether answers can be constrained: the formulation has a :meth:`grammar`."""
        return self.grammar("") is not None
