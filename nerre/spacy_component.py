"""nerre as a spaCy pipeline component.

Installing nerre registers the factory ``nerre`` with spaCy (entry point ``spacy_factories``), so no import
is needed::

    nlp = spacy.blank("en")                      # or any pipeline: spacy.load("en_core_web_sm")
    nlp.add_pipe("nerre", config={"adapter": "runs/lightning_logs/version_0/adapter"})
    doc = nlp("John Smith works for Acme .")
    doc.ents, doc.spans["nerre"], doc._.relations
    docs = list(nlp.pipe(texts, batch_size=32))  # each batch goes through the decoder together
    nlp.to_disk("pipeline")                      # copies the adapter into pipeline/nerre/
    nlp = spacy.load("pipeline")

The component wraps :class:`nerre.predict.Extractor` with the pipeline's own tokens, and writes its
predictions with :func:`nerre.spacy_export.annotate`. An entity that does not align with the pipeline's
tokens cannot be a span: it is logged, listed in ``doc.user_data["nerre"]["unaligned"]`` (read it with
:meth:`nerre.spacy_export.ExportReport.from_docs`) and added up in :attr:`NerreComponent.report`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import minibatch

from nerre.errors import ConfigError
from nerre.example import Example, Token
from nerre.spacy_export import USER_DATA_KEY, Alignment, ExportReport, annotate

log = logging.getLogger(__name__)


@Language.factory(
    "nerre",
    default_config={"adapter": None, "base_model": None, "constrained": None, "batch_size": 8,
                    "alignment": "strict", "overwrite_ents": True},
    assigns=["doc.ents", "doc.spans", "doc._.relations"],
)
def make_nerre(nlp: Language, name: str, adapter: str | None, base_model: str | None, constrained: bool | None,
               batch_size: int, alignment: Alignment, overwrite_ents: bool) -> NerreComponent:
    """The spaCy factory of :class:`NerreComponent` (its arguments are the component's config)."""
    return NerreComponent(nlp, name, adapter, base_model, constrained, batch_size, alignment, overwrite_ents)


class NerreComponent:
    """Extract entities and relations with a trained nerre adapter inside a spaCy pipeline.

    Args:
        nlp: the pipeline.
        name: the component's name in the pipeline.
        adapter: the adapter folder written by ``nerre fit`` (its ``adapter/``), or a shipped adapter's name;
            loaded on first use.
        base_model: use this base model instead of the one recorded with the adapter.
        constrained: faithful decoding (default: constrained for the tagged formulation), as for ``nerre predict``.
        batch_size: texts the decoder generates for together.
        alignment: how predicted offsets meet the pipeline's tokens: ``strict`` (unaligned entities are
            reported, not set), ``expand`` or ``contract``.
        overwrite_ents: replace ``doc.ents``; False keeps the entities earlier components set and adds only
            nerre's that do not overlap them. ``doc.spans["nerre"]`` holds all of nerre's in any case.
    """

    def __init__(self, nlp: Language, name: str = "nerre", adapter: str | None = None, base_model: str | None = None,
                 constrained: bool | None = None, batch_size: int = 8, alignment: Alignment = "strict",
                 overwrite_ents: bool = True):
        self.nlp, self.name = nlp, name
        self.adapter, self.base_model, self.constrained = adapter, base_model, constrained
        self.batch_size, self.alignment, self.overwrite_ents = batch_size, alignment, overwrite_ents
        self.report = ExportReport()
        self._extractor: Any = None

    @property
    def extractor(self) -> Any:
        """The :class:`~nerre.predict.Extractor` (loaded on first use)."""
        if self._extractor is None:
            from nerre.predict import Extractor

            if not self.adapter:
                raise ConfigError(f"the {self.name!r} component has no adapter: add it with "
                                  "config={'adapter': 'runs/.../adapter'}")
            self._extractor = Extractor.load(self.adapter, base_model=self.base_model, constrained=self.constrained,
                                             batch_size=self.batch_size)
        return self._extractor

    def __call__(self, doc: Doc) -> Doc:
        return self.set_annotations([doc])[0]

    def pipe(self, stream: Iterable[Doc], batch_size: int = 128) -> Iterator[Doc]:
        """Annotate docs in batches of ``batch_size``; each batch is decoded together."""
        for docs in minibatch(stream, size=batch_size):
            yield from self.set_annotations(list(docs))

    def set_annotations(self, docs: list[Doc]) -> list[Doc]:
        """Predict for ``docs`` (on their own tokens) and set ``doc.ents``, ``doc.spans`` and relations."""
        examples = [Example(doc.text, tokens=[Token(t.idx, t.idx + len(t.text)) for t in doc if not t.text.isspace()],
                            id=str(i)) for i, doc in enumerate(docs)]
        for doc, prediction in zip(docs, self.extractor.predict(examples)):
            report = annotate(doc, prediction.example, self.alignment, keep_ents=not self.overwrite_ents)
            doc.user_data[USER_DATA_KEY]["id"] = None
            doc.user_data[USER_DATA_KEY]["defects"] = dict(prediction.defects)
            if report.unaligned:
                log.warning("nerre: %d predicted entities do not align with the pipeline's tokens and are not "
                            "spans: %s", len(report.unaligned), [str(e) for _, e in report.unaligned])
            self.report += report
        return docs

    # -- serialisation: the adapter travels with the pipeline -------------------------------------------
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Copy the adapter folder to ``path`` (``nlp.to_disk`` passes the component's own folder)."""
        if not self.adapter:
            raise ConfigError(f"the {self.name!r} component has no adapter to save")
        from nerre.adapter import resolve_adapter

        source = resolve_adapter(self.adapter)  # a shipped adapter's name: its folder in the package
        if source.resolve() != Path(path).resolve():
            shutil.copytree(source, path, dirs_exist_ok=True)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> NerreComponent:
        """Use the adapter saved in ``path`` (loaded on first use)."""
        self.adapter, self._extractor = str(path), None
        return self
