"""Files written by a real Label Studio server (1.23.2), read back: the loop of benchmarks/labelstudio_check.py.

``tests/data/labelstudio-1.23.2/``: ``preannotated.json`` is what ``nerre predict --to labelstudio --rank
uncertainty`` wrote for 12 CoNLL04 test sentences (BRAT files ``doc-000.txt`` ...); the server imported it,
6 tasks were annotated through the API from their pre-annotations (the first, ``doc-004``, with its first
span removed), a task with two relation labels on one span pair was imported as an annotation, and the
project was exported three ways: ``export.json`` (the default JSON export, predictions as ids),
``export_min.json`` (JSON-MIN) and ``export_full.json`` (a snapshot with complete predictions).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nerre.loaders import convert, detect_format, load_examples
from nerre.loaders.options import ReadNotes

DATA = Path(__file__).parent / "data" / "labelstudio-1.23.2"
ANNOTATED = {"doc-004", "doc-009", "doc-007", "doc-005", "doc-010", "doc-001"}  # the 6 least confident
IDS = {f"doc-{k:03d}" for k in range(12)} | {"two-labels"}


def read(name: str) -> tuple[dict, ReadNotes]:
    notes = ReadNotes()
    return {ex.id: ex for ex in load_examples(DATA / name, notes=notes)}, notes


def content(example) -> tuple:
    return (example.text, sorted((e.start, e.end, e.label) for e in example.entities),
            sorted(((r.head.start, r.head.end), (r.tail.start, r.tail.end), r.label) for r in example.relations))


@pytest.mark.parametrize("name", ["preannotated.json", "export.json", "export_min.json", "export_full.json"])
def test_every_file_is_told_as_label_studio(name):
    assert detect_format(DATA / name) == "labelstudio"


def test_the_snapshot_gives_back_the_predictions_and_the_annotations_with_nerres_ids():
    predicted, _ = read("preannotated.json")
    full, notes = read("export_full.json")
    assert set(full) == IDS  # the ids nerre wrote, not Label Studio's task ids
    for nid in set(predicted) - ANNOTATED:  # prediction-only tasks: read from their prediction
        assert content(full[nid]) == content(predicted[nid])
        assert full[nid].scores and full[nid].score == pytest.approx(predicted[nid].score, abs=1e-6)
    for nid in ANNOTATED - {"doc-004"}:  # annotated as pre-annotated
        assert content(full[nid]) == content(predicted[nid])
    corrected, original = full["doc-004"], predicted["doc-004"]
    assert corrected.entities == original.entities[1:]
    assert "6 tasks without an annotation read from their last prediction" in str(notes)


def test_the_default_export_reads_the_annotated_tasks_and_counts_the_prediction_ids():
    full, _ = read("export_full.json")
    default, notes = read("export.json")
    assert set(default) == IDS
    assert all(not default[nid].entities for nid in IDS - ANNOTATED - {"two-labels"})
    assert all(content(default[nid]) == content(full[nid]) for nid in ANNOTATED)
    assert "6 tasks without an annotation whose predictions the export holds as ids only" in str(notes)
    assert "only_id" in str(notes)  # says how to export them in full


def test_two_relation_labels_on_one_span_pair_survive_the_server():
    default, _ = read("export.json")
    two = default["two-labels"]
    assert sorted(r.label for r in two.relations) == ["Live_In", "Work_For"]
    assert {(r.head, r.tail) for r in two.relations} == {(two.entities[0], two.entities[1])}
    task = next(t for t in json.loads((DATA / "export.json").read_text()) if t["data"]["nerre_id"] == "two-labels")
    relations = [r for r in task["annotations"][0]["result"] if r["type"] == "relation"]
    assert len(relations) == 1 and sorted(relations[0]["labels"]) == ["Live_In", "Work_For"]


def test_json_min_gives_the_annotated_spans_and_says_what_it_cannot_hold():
    full, _ = read("export_full.json")
    minimal, notes = read("export_min.json")
    assert set(minimal) == IDS
    for nid in ANNOTATED:
        assert content(minimal[nid])[:2] == content(full[nid])[:2] and not minimal[nid].relations
    assert all(not minimal[nid].entities for nid in IDS - ANNOTATED - {"two-labels"})
    assert "JSON-MIN export: it holds no relations" in str(notes)


def test_brat_label_studio_brat_keeps_the_document_names(tmp_path):
    convert(DATA / "export_full.json", tmp_path / "brat", to="brat")
    assert {p.stem for p in (tmp_path / "brat").glob("*.ann")} == IDS
    back = {ex.id: ex for ex in load_examples(tmp_path / "brat")}
    full, _ = read("export_full.json")
    assert all(content(back[nid]) == content(full[nid]) for nid in IDS)
