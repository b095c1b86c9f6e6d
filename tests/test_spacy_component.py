"""The spaCy pipeline component (on the adapter the tiny session run trains), its batching, serialisation,
unaligned entities, and the entry point that registers it without an import."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import spacy

import nerre.spacy_component as component
from nerre.example import Entity, Example
from nerre.predict import Extractor, Prediction
from nerre.spacy_export import SPANS_KEY, ExportReport

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["John Smith works for Acme .", "Mary Jones lives in Paris .", "Nothing happened today .",
         "John Smith works for Acme ."]


def entities(doc) -> list[tuple[str, str]]:
    return [(e.text, e.label_) for e in doc.ents]


@pytest.fixture(scope="module")
def nlp(tiny_adapter):
    nlp = spacy.blank("en")
    nlp.add_pipe("nerre", config={"adapter": str(tiny_adapter)})  # constrained decoding (tagged formulation)
    return nlp


def test_component_sets_ents_spans_and_relations(nlp):
    doc = nlp("John Smith works for Acme .")
    assert entities(doc) == [("John Smith", "PER"), ("Acme", "ORG")]
    assert [(s.text, s.label_) for s in doc.spans[SPANS_KEY]] == entities(doc)
    assert [(h.text, label, t.text) for h, label, t in doc._.relations] == [("John Smith", "Work_For", "Acme")]
    assert nlp.get_pipe("nerre").report.ok and nlp.get_pipe("nerre").extractor.constrained


def test_pipe_batches_through_the_decoder(nlp, monkeypatch):
    calls = []
    original = Extractor.generate

    def spy(self, windows):
        calls.append(len(windows))
        return original(self, windows)

    monkeypatch.setattr(Extractor, "generate", spy)
    docs = list(nlp.pipe(TEXTS, batch_size=3))
    assert calls == [3, 1]  # one decoder call per spaCy batch
    assert [entities(d) for d in docs] == [entities(nlp(t)) for t in TEXTS]
    assert [len(d._.relations) for d in docs] == [1, 1, 0, 1]


def test_to_disk_and_spacy_load_restore_the_component(nlp, tmp_path):
    nlp.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline/nerre/nerre.json").is_file()
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("nerre").adapter == str(tmp_path / "pipeline/nerre")
    doc = loaded("Mary Jones lives in Paris .")
    assert entities(doc) == entities(nlp("Mary Jones lives in Paris ."))
    assert len(doc._.relations) == 1


def test_added_to_an_existing_pipeline_keeps_earlier_entities_when_asked(tiny_adapter):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "NICK", "pattern": "Bob"}])
    nlp.add_pipe("nerre", config={"adapter": str(tiny_adapter), "overwrite_ents": False})
    doc = nlp("Acme hired Bob Lee in Rome .")
    assert entities(doc) == [("Acme", "ORG"), ("Bob", "NICK"), ("Rome", "LOC")]
    assert [(s.text, s.label_) for s in doc.spans[SPANS_KEY]] == [("Acme", "ORG"), ("Bob Lee", "PER"), ("Rome", "LOC")]


def test_entities_off_the_pipeline_tokens_are_reported_not_lost(nlp, monkeypatch, caplog):
    def predict(self, examples, progress=False):
        for ex in examples:  # one entity on the tokens, one inside a token ("Smi" of "Smith")
            yield Prediction(Example(ex.text, [Entity(0, 4, "PER"), Entity(5, 8, "PER")], tokens=ex.tokens), Counter())

    monkeypatch.setattr(Extractor, "predict", predict)
    pipe = nlp.get_pipe("nerre")
    before = len(pipe.report.unaligned)
    doc = nlp("John Smith works for Acme .")
    assert entities(doc) == [("John", "PER")]
    assert [e for _, e in ExportReport.from_docs([doc]).unaligned] == [Entity(5, 8, "PER")]
    assert [e for _, e in pipe.report.unaligned[before:]] == [Entity(5, 8, "PER")]
    assert "do not align with the pipeline's tokens" in caplog.text


def test_factory_without_an_adapter_says_what_to_set():
    nlp = spacy.blank("en")
    nlp.add_pipe("nerre")
    with pytest.raises(ValueError, match="has no adapter: add it with config="):
        nlp("text")


def test_entry_point_registers_the_factory_without_an_import(tmp_path):
    """spaCy finds the factory through the entry point pyproject declares (as `pip install` records it)."""
    section = re.search(r"^\[project\.entry-points\.spacy_factories\]\n(.*?)(?:\n\[|\Z)",
                        (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    declared = dict(re.findall(r'^(\w+) = "(.*)"$', section.group(1), re.M))
    assert declared == {"nerre": "nerre.spacy_component:make_nerre"}
    module, name = declared["nerre"].split(":")
    assert module == component.__name__
    assert getattr(component, name) is component.make_nerre
    dist = tmp_path / "site" / "nerre_entry_point_check-0.dist-info"  # the metadata an install writes
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nerre-entry-point-check\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[spacy_factories]\nnerre = {declared['nerre']}\n")
    script = ("import sys, spacy\nnlp = spacy.blank('en')\npipe = nlp.add_pipe('nerre', config={'batch_size': 2})\n"
              "assert 'nerre.spacy_component' in sys.modules and pipe.batch_size == 2\nprint(nlp.pipe_names)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['nerre']"
