"""The `nerre` command as users call it: data stats/roundtrip, evaluate, errors, and every shipped config."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from nerre.cli import main, run
from nerre.datamodule import ExtractionData
from nerre.example import Entity, Example
from nerre.loaders import load_examples, write_jsonl
from nerre.loaders.tags import iob2_tags

ROOT = Path(__file__).resolve().parents[1]


def cli_json(args: list[str], capsys) -> dict:
    run(args)
    return json.loads(capsys.readouterr().out)


def test_data_stats_match_source_md(data_dir, capsys):
    stats = cli_json(["data", "stats", str(data_dir / "conll2003/test.txt")], capsys)
    assert stats == {"format": "conll", "examples": 3453, "tokens": 46435, "relations": {},
                     "entities": {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}, "converted": [],
                     "grammar": {"formulation": "tagged", "accepted": 3453, "examples": 3453, "share": 1.0,
                                 "outside": []}}
    stats = cli_json(["data", "stats", str(data_dir / "conll04/conll04_train.json"), "--format", "spert"], capsys)
    assert stats["examples"] == 922 and stats["tokens"] == 26525
    assert stats["entities"] == {"Loc": 1219, "Org": 616, "Other": 455, "Peop": 1087}
    assert stats["relations"] == {"Kill": 179, "Live_In": 330, "Located_In": 247, "OrgBased_In": 271, "Work_For": 256}


@pytest.mark.parametrize("formulation", ["tagged", "json"])
def test_data_roundtrip_is_exact(data_dir, capsys, formulation):
    result = cli_json(["data", "roundtrip", str(data_dir / "ade/ade_full.json"), "--formulation", formulation,
                       "--types_file", str(data_dir / "ade/ade_types.json")], capsys)
    assert result["examples"] == result["exact"] == 4272 and result["defects"] == {}


def perturb(examples: list[Example], seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for ex in examples:
        entities = []
        for e in ex.entities:
            roll = rng.random()
            if roll < 0.1:
                continue
            if roll < 0.2:
                entities.append(Entity(e.start, e.end, rng.choice(["PER", "LOC", "ORG", "MISC"])))
            elif roll < 0.25 and len(ex.tokens) > 1:
                token = rng.choice(ex.tokens)
                entities.append(Entity(token.start, token.end, e.label))
            else:
                entities.append(e)
        out.append(Example(ex.text, sorted(set(entities)), [], ex.tokens, ex.id))
    return out


def to_tags(example: Example) -> list[str]:
    index = {t.start: i for i, t in enumerate(example.tokens)}
    ends = {t.end: i + 1 for i, t in enumerate(example.tokens)}
    spans, taken = [], set()
    for e in example.entities:
        s, t = index[e.start], ends[e.end]
        if not taken & set(range(s, t)):
            spans.append((s, t, e.label))
            taken |= set(range(s, t))
    return iob2_tags(len(example.tokens), spans)


def test_evaluate_agrees_with_seqeval_on_perturbed_conll2003_test(data_dir, tmp_path, capsys):
    gold = load_examples(data_dir / "conll2003/test.txt")
    # overlapping predictions cannot be written as IOB tags: keep the first of each overlapping group
    predictions = [Example(p.text, _flat(p), [], p.tokens, p.id) for p in perturb(gold, seed=13)]
    path = write_jsonl(predictions, tmp_path / "pred.jsonl")
    scores = cli_json(["evaluate", "--gold", str(data_dir / "conll2003/test.txt"), "--pred", str(path)], capsys)
    report = classification_report([to_tags(g) for g in gold], [to_tags(p) for p in predictions],
                                   mode="strict", scheme=IOB2, output_dict=True, digits=10)
    assert 0.5 < scores["entities"]["f1"] < 0.95
    assert scores["entities"]["f1"] == pytest.approx(report["micro avg"]["f1-score"], abs=1e-12)
    assert scores["entities"]["precision"] == pytest.approx(report["micro avg"]["precision"], abs=1e-12)
    assert scores["entities"]["recall"] == pytest.approx(report["micro avg"]["recall"], abs=1e-12)
    for label in ("PER", "LOC", "ORG", "MISC"):
        assert scores["entities"]["per_label"][label]["f1"] == pytest.approx(report[label]["f1-score"], abs=1e-12)
    assert set(scores["relations"]) == {"strict", "boundaries"}


def _flat(example: Example) -> list[Entity]:
    kept: list[Entity] = []
    for e in sorted(example.entities):
        if all(e.start >= k.end or e.end <= k.start for k in kept):
            kept.append(e)
    return kept


def test_evaluate_scores_relations_strict_and_boundaries(data_dir, tmp_path, capsys):
    """Every third sentence gets an argument of the wrong entity type (wrong when strict, right on boundaries),
    every third a relation of the wrong type (wrong either way)."""
    gold = load_examples(data_dir / "conll04/conll04_test.json")
    labels = sorted({r.label for ex in gold for r in ex.relations})
    pred, wrong_type, wrong_label = [], 0, 0
    for i, ex in enumerate(gold):
        entities, relations = list(ex.entities), sorted(set(ex.relations))
        if relations and i % 3 == 0:
            head = relations[0].head
            other = replace(head, label="Other" if head.label != "Other" else "Peop")
            wrong_type += sum(head in (r.head, r.tail) for r in relations)
            swap = {head: other}
            entities = [swap.get(e, e) for e in entities]
            relations = [replace(r, head=swap.get(r.head, r.head), tail=swap.get(r.tail, r.tail)) for r in relations]
        elif relations and i % 3 == 1:
            first = relations[0]
            label = next(label for label in labels if replace(first, label=label) not in relations)
            relations = [replace(first, label=label), *relations[1:]]
            wrong_label += 1
        pred.append(Example(ex.text, entities, relations, ex.tokens, ex.id))
    path = write_jsonl(pred, tmp_path / "pred.jsonl")
    scores = cli_json(["evaluate", "--gold", str(data_dir / "conll04/conll04_test.json"), "--pred", str(path)], capsys)
    assert wrong_type > wrong_label > 50
    total = 422  # distinct gold relations of the CoNLL04 test set, as many predicted
    for kind, right in [("strict", total - wrong_type - wrong_label), ("boundaries", total - wrong_label)]:
        got = scores["relations"][kind]
        assert (got["gold"], got["predicted"], got["correct"]) == (total, total, right), kind
        assert got["precision"] == pytest.approx(right / total) and got["recall"] == pytest.approx(right / total)
        assert got["f1"] == pytest.approx(right / total), kind


def test_bad_input_gives_a_clear_error_and_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("EU NNP I-NP B-ORG\nrejects VBZ I-NP\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "stats", str(bad)])
    assert exit_info.value.code == 2
    assert f"nerre: error: {bad}:2:" in capsys.readouterr().err


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(config, data_dir, capsys, monkeypatch, tmp_path):
    """Every config parses against the CLI, and its data files exist and carry only its labels."""
    monkeypatch.setenv("NERRE_DATA_DIR", str(data_dir))
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "nerre.task.LoraTask"
    settings = yaml.safe_load(config.read_text())["data"]
    tokenizer_dir = tmp_path / "tok"
    _save_tiny_tokenizer(tokenizer_dir)
    data = ExtractionData(**{**settings, "schema": _schema(settings), "model": str(tokenizer_dir)})
    assert data.examples["train"] and ("val" in data.examples or "test" in data.examples)  # val alone is optional


def _schema(settings: dict):
    from nerre.schema import Schema

    return Schema(**settings["schema"])


def _save_tiny_tokenizer(folder: Path) -> None:
    from tiny import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(folder)
    tiny_model(tokenizer).config.save_pretrained(folder)
