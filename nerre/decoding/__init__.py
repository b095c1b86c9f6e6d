"""Generating answers: faithful constrained decoding with lossless speculation, or free generation.

One module per job:

* :mod:`~nerre.decoding.options`: :class:`DecodeOptions`, :class:`DecodeStats`, token budgets and
  the one check of whether a formulation can be constrained (:func:`use_constraints`);
* :mod:`~nerre.decoding.speculative`: constrained greedy decoding over the formulation's grammar
  (:meth:`nerre.formulation.Formulation.grammar`), with copy speculation and several inputs per pass;
* :mod:`~nerre.decoding.passes`: forward passes over per-input KV caches, packed: the only module
  that reaches into transformers internals;
* :mod:`~nerre.decoding.free`: plain greedy ``generate``;
* :mod:`~nerre.decoding.confidence`: scores of predicted entities, relations and documents from the
  constrained decoder's own decisions, and the score thresholds;
* :mod:`~nerre.decoding.decoder`: :class:`FaithfulDecoder`, which picks one of the two.

The byte string every token id stands for (:class:`TokenTable`, :func:`token_table`) lives in
:mod:`nerre.vocabulary`, below both the formulations' grammars and the decoder; it is re-exported here.

Answers become examples with :meth:`nerre.formulation.Formulation.parse`.
"""

from nerre.decoding.decoder import FaithfulDecoder, generate_answers
from nerre.decoding.options import DecodeOptions, DecodeStats, answer_budget, capped_budget, use_constraints
from nerre.vocabulary import TokenTable, token_table

__all__ = [
    "DecodeOptions",
    "DecodeStats",
    "FaithfulDecoder",
    "TokenTable",
    "answer_budget",
    "capped_budget",
    "generate_answers",
    "token_table",
    "use_constraints",
]
