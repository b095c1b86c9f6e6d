"""What every formulation provides: an example becomes a target text; generated text becomes entities."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field

from nerre.example import Entity, Example, Relation
from nerre.schema import Schema

#: Every defect a decoder can count, with what it means. Decoders never raise on model output.
DEFECTS = {
    "unknown_label": "a tag or record names a label outside the configured set",
    "unclosed_tag": "an opening tag is never closed",
    "unopened_tag": "a closing tag has no matching opening tag",
    "crossing_tags": "tags cross instead of nesting",
    "text_drift": "the text around the tags differs from the input",
    "hallucinated_entity": "an entity's text is not in the input at the place the output puts it",
    "empty_entity": "a tag pair encloses no text",
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

#: The input of a decoder: an example (the bio formulation lists its tokens), or a plain text
#: (tokenized by :func:`nerre.example.tokenize`).
Source = Example | str


def source_text(source: Source) -> str:
    """The text of a decoder's input."""
    return source if isinstance(source, str) else source.text


@dataclass
class Decoded:
    """The result of decoding one generated text.

    Args:
        entities: recovered entities, mapped to character offsets of the source text.
        relations: recovered relations between those entities.
        defects: how many times each defect (see :data:`DEFECTS`) occurred.
    """

    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    defects: Counter = field(default_factory=Counter)

    def as_example(self, source: Example | str) -> Example:
        """The prediction as an :class:`Example` over ``source``."""
        if isinstance(source, str):
            return Example(source, self.entities, self.relations)
        return Example(source.text, self.entities, self.relations, source.tokens, source.id)


class Formulation(ABC):
    """Turns examples into target texts and generated texts back into annotations.

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
    def decode(self, source: Source, output: str) -> Decoded:
        """Recover annotations of ``source`` from generated ``output``; never raises on bad output."""

    @abstractmethod
    def instruction(self) -> str:
        """One paragraph telling the model what output format to produce."""

    def representable(self, example: Example) -> tuple[Example, Counter]:
        """The part of ``example`` that this formulation's answers can hold, and what it leaves out, by kind.

        ``encode`` writes exactly that part; all of it comes back from ``decode``. Only the bio
        formulation leaves anything out (overlapping entities, see :mod:`nerre.formulation.bio`).
        """
        return example, Counter()

    def roundtrip(self, example: Example) -> Example:
        """``decode(encode(example))`` as an :class:`Example`."""
        return self.decode(example, self.encode(example)).as_example(example)
