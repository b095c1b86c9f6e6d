"""Generative formulations: how an example becomes a target text, and generated answers become examples."""

from nerre.formulation.base import DEFECTS, Formulation, ParsedAnswer, Source, source_text
from nerre.formulation.bio import BioTags
from nerre.formulation.grammar import Grammar, OutsideGrammar
from nerre.formulation.json_records import JsonRecords
from nerre.formulation.tagged import TaggedText
from nerre.formulation.tagged_grammar import TagGrammar
from nerre.schema import Schema

FORMULATIONS: dict[str, type[Formulation]] = {"tagged": TaggedText, "json": JsonRecords, "bio": BioTags}


def get_formulation(name: str, schema: Schema) -> Formulation:
    """The formulation called ``name`` (``tagged``, ``json`` or ``bio``) over ``schema``."""
    try:
        return FORMULATIONS[name](schema)
    except KeyError:
        raise ValueError(f"unknown formulation {name!r}; choose one of {sorted(FORMULATIONS)}") from None


__all__ = ["DEFECTS", "FORMULATIONS", "BioTags", "Formulation", "Grammar", "JsonRecords", "OutsideGrammar",
           "ParsedAnswer", "Source", "TagGrammar", "TaggedText", "get_formulation", "source_text"]
