"""benchmarks/pr_curve.py, calibration.py and active_learning.py on the tiny adapter and the tiny data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import TINY_CONFIG, TINY_DATA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

GOLD = str(TINY_DATA / "tiny.jsonl")


def test_pr_curve_sweeps_thresholds_and_biases(tiny_adapter, tmp_path):
    import pr_curve

    result = pr_curve.main(["--adapter", str(tiny_adapter), "--data", GOLD, "--biases", "-10000", "0", "8",
                            "--relations", "--thresholds", "11", "--results", str(tmp_path), "--name", "tiny"])
    saved = json.loads((tmp_path / "pr_curve-tiny.json").read_text())
    assert (tmp_path / "pr_curve-tiny.png").stat().st_size > 1000 and saved["documents"] == 4
    curve = saved["curves"]["entities"]["0.0"]
    assert [p["threshold"] for p in curve] == [k / 10 for k in range(11)]
    recalls = [p["recall"] for p in curve]
    assert recalls == sorted(recalls, reverse=True)  # a higher threshold keeps less
    assert saved["curves"]["entities"]["-10000.0"][0]["recall"] == 0.0  # no tag opened
    best = result["entities"]["best_f1"]
    assert best["f1"] == max(p["f1"] for c in saved["curves"]["entities"].values() for p in c)
    target = result["entities"]["target_recall"]
    assert target is None or target["recall"] >= 0.95
    assert set(saved["curves"]) == {"entities", "relations"}


def test_calibration_measures_ece_and_fits_a_temperature(tiny_adapter, tmp_path):
    import shutil

    import calibration

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    result = calibration.main(["--adapter", str(adapter), "--data", GOLD, "--dev", GOLD, "--save",
                               "--temperatures", "0.5", "1", "3", "--results", str(tmp_path), "--name", "tiny"])
    assert 0.0 <= result["before"]["ece"] <= 1.0 and result["before"]["entities"] > 0
    losses = result["dev"]["log_loss_by_temperature"]
    assert losses[str(result["temperature"])] == min(losses.values())
    assert (tmp_path / "calibration-tiny.png").stat().st_size > 1000
    saved = json.loads((adapter / "nerre.json").read_text())
    assert saved["score_temperature"] == result["temperature"]
    bins = result["before"]["bins"]
    ece = sum(b["count"] * abs(b["accuracy"] - b["mean_score"]) for b in bins) / sum(b["count"] for b in bins)
    assert result["before"]["ece"] == round(ece, 4)


def test_calibration_scores_match_the_decoder(tiny_adapter):
    import calibration
    import pytest

    from nerre.example import Example
    from nerre.loaders import read_jsonl
    from nerre.predict import Extractor

    extractor = Extractor.load(tiny_adapter, temperature=1.0)
    gold = read_jsonl(TINY_DATA / "tiny.jsonl")
    recomputed = calibration.Decisions(extractor, gold).predictions(1.0)
    decoded = [p.example for p in extractor.predict([Example(g.text, tokens=g.tokens, id=g.id) for g in gold])]
    assert len(recomputed) == len(decoded) == len(gold)
    for a, b in zip(recomputed, decoded):
        assert a.entities == b.entities and a.scores.keys() == b.scores.keys()
        assert all(a.scores[k] == pytest.approx(b.scores[k], rel=1e-3, abs=1e-6) for k in a.scores)


def test_calibration_decodes_long_texts_in_windows_as_predict_does(tiny_adapter):
    import calibration

    from nerre.example import Example
    from nerre.loaders import read_jsonl
    from nerre.predict import Extractor

    extractor = Extractor.load(tiny_adapter, temperature=1.0)
    extractor.window_tokens = 6  # the longer tiny texts are split into windows, then merged back
    gold = read_jsonl(TINY_DATA / "tiny.jsonl")
    assert any(len(extractor.split(g)) > 1 for g in gold)
    recomputed = calibration.Decisions(extractor, gold).predictions(1.0)
    decoded = [p.example for p in extractor.predict([Example(g.text, tokens=g.tokens, id=g.id) for g in gold])]
    assert [a.entities for a in recomputed] == [b.entities for b in decoded]
    assert [a.scores.keys() for a in recomputed] == [b.scores.keys() for b in decoded]
    assert any(a.entities for a in recomputed)


def test_active_learning_runs_both_arms_on_the_same_heldout(tiny_model_dir, tmp_path):
    import active_learning

    # An epoch limit in the config must not cut the step budget, and the fits (JSON Lines) must not read the
    # config's other splits, which may be in another format.
    config = tmp_path / "one-epoch.yaml"
    config.write_text(TINY_CONFIG.read_text().replace("  max_steps: 150\n", "  max_epochs: 1\n")
                      .replace("  val: tiny.jsonl\n", "  val: formats/labelstudio.json\n"))
    result = active_learning.main(["--config", str(config), "--data-dir", str(TINY_DATA), "--score-on", "test",
                                   "--start", "2",
                                   "--add", "1", "--rounds", "2", "--pool", "2", "--max-steps", "2",
                                   "--results", str(tmp_path), "--name", "tiny",
                                   "--model.init_args.model", str(tiny_model_dir)])
    for arm in ("uncertainty", "random"):
        rows = result["arms"][arm]
        assert [r["documents"] for r in rows] == [2, 3, 4] and [r["round"] for r in rows] == [0, 1, 2]
        assert [r["steps"] for r in rows] == [2, 2, 2]  # one batch per epoch: two epochs each
        assert all("f1" in r["scores"]["entities"] for r in rows)
    assert result["arms"]["uncertainty"][0] == result["arms"]["random"][0]  # one start, scored once
    added = [r["added"] for r in result["arms"]["uncertainty"][1:]]
    assert len(set(added[0]) | set(added[1])) == 2  # never the same document twice
    for arm in ("uncertainty", "random"):  # the annotation cost of each round: what it had plus what it added
        rows = result["arms"][arm]
        assert rows[0]["labelled"]["tokens"] > 0
        for before, after in zip(rows, rows[1:]):
            assert all(after["labelled"][k] == before["labelled"][k] + after["added_size"][k]
                       for k in ("tokens", "entities", "relations"))
    assert result["heldout"] == 4 and (tmp_path / "active_learning-tiny.png").is_file()


def test_tune_decoding_chooses_on_dev_and_decodes_the_test_split_with_the_choice(tiny_run, tiny_adapter, tmp_path):
    import shutil

    import pytest
    import tune_decoding
    import yaml
    from common import protocol

    run = tmp_path / "tiny"
    logs = run / "run" / "lightning_logs" / "version_0"
    logs.mkdir(parents=True)
    (config,) = tiny_run.glob("runs/**/config.yaml")
    shutil.copy(config, logs / "config.yaml")
    base = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/conll04-cpu/result.json").read_text())
    (run / "result.json").write_text(json.dumps(base | {"name": "tiny", "test_examples": 4}))
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    args = ["--run", "tiny", "--adapter", str(adapter), "--results", str(tmp_path),
            "--relation-biases", "-10000", "0", "--thresholds", "0", "0.5"]
    result = tune_decoding.main([*args, "--save"])

    grid = result["dev_grid"]
    assert [(p["relation_bias"], p["min_relation_score"]) for p in grid] == [(-10000, 0), (-10000, 0.5), (0, 0), (0, 0.5)]
    assert grid[0]["predicted_relations"] == grid[1]["predicted_relations"] == 0  # no relation line started
    assert grid[2]["predicted_relations"] >= grid[3]["predicted_relations"]  # a threshold only drops
    chosen = next(p for p in grid if p["strict"] == max(q["strict"] for q in grid))  # the first of the best
    assert result["decoding"] == {k: chosen[k] for k in ("entity_bias", "relation_bias", "min_relation_score")}
    # dev and test are the same four sentences here: the test scores are the chosen setting's dev scores
    assert result["relations"]["strict"]["f1"] == chosen["strict"]
    assert result["entities"]["f1"] == chosen["entity_f1"]
    out = tmp_path / "tiny-dev-tuned"
    assert (out / "breakdown.md").exists() and len((out / "predictions.jsonl").read_text().splitlines()) == 4
    assert protocol(out).endswith(f"decoding tuned on dev (entity bias +0, relation bias "
                                  f"{chosen['relation_bias']:+g}, relation score >= {chosen['min_relation_score']:g})")
    assert json.loads((adapter / "nerre.json").read_text())["decoding"] == result["decoding"]  # --save
    assert result["saved"] == "adapter/nerre.json"  # from the results folder: no machine's absolute path
    # tuning sets a saved decoding aside: thresholds that drop everything change no dev score
    saved = json.loads((adapter / "nerre.json").read_text())
    (adapter / "nerre.json").write_text(json.dumps(saved | {"decoding": {"min_entity_score": 1.01}}))
    assert tune_decoding.main(args)["dev_grid"] == grid

    saved = yaml.safe_load((logs / "config.yaml").read_text())
    saved["data"]["train_dev"] = True
    (logs / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(SystemExit, match="no dev set to tune on"):
        tune_decoding.main(args)
    saved["data"]["train_dev"] = False
    (logs / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(SystemExit, match="no adapter under run/; pass --adapter"):  # result folders keep no adapter
        tune_decoding.main([a for a in args if a != str(adapter) and a != "--adapter"])
    (logs / "config.yaml").unlink()
    with pytest.raises(SystemExit, match=r"no run/lightning_logs/version_\*/config.yaml; pass the folder run.py wrote"):
        tune_decoding.main(args)


def test_ship_adapter_ships_a_tuned_run_with_the_decoding_its_scores_were_measured_with(tiny_adapter, tmp_path,
                                                                                        monkeypatch):
    import shutil

    import pytest
    import ship_adapter

    monkeypatch.setattr(ship_adapter, "RESULTS", tmp_path)
    monkeypatch.setattr(ship_adapter, "SHIPPED", tmp_path / "adapters")
    base = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/conll04-cpu/result.json").read_text())
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "result.json").write_text(json.dumps(base | {"name": "tiny"}))
    adapter = tmp_path / "tiny" / "run" / "lightning_logs" / "version_0" / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    decoding = {"entity_bias": 0.0, "relation_bias": 1.0, "min_relation_score": 0.4}
    (tmp_path / "tiny-dev-tuned").mkdir()
    (tmp_path / "tiny-dev-tuned" / "result.json").write_text(json.dumps(base | {
        "name": "tiny-dev-tuned", "tuned_from": "tiny", "decoding": decoding, "training_command": "run.py --name tiny",
        "command": "tune_decoding.py --run tiny",
        "tuned_on": {"split": "dev.json", "examples": 4, "metric": "relation F1, strict", "dev_score": 0.5}}))

    with pytest.raises(SystemExit, match=r"saved decoding \{\} is not the one .* save it with `python "
                                         r"benchmarks/tune_decoding.py --run tiny ... --save`"):
        ship_adapter.main(["--run", "tiny-dev-tuned", "--as", "tuned"])
    settings = json.loads((adapter / "nerre.json").read_text())
    (adapter / "nerre.json").write_text(json.dumps(settings | {"decoding": decoding}))
    ship_adapter.main(["--run", "tiny-dev-tuned", "--as", "tuned"])
    shipped = tmp_path / "adapters" / "tuned"
    assert json.loads((shipped / "nerre.json").read_text())["decoding"] == decoding
    card = (shipped / "README.md").read_text()
    assert "Decoding tuned on dev and saved with the adapter (4 examples of `dev.json`, best relation F1, strict): " \
           "entity_bias 0, relation_bias 1, min_relation_score 0.4 (`tune_decoding.py --run tiny`)" in card
    assert "- command: `run.py --name tiny`" in card
    with pytest.raises(SystemExit, match="ship tiny-dev-tuned, the folder scored with it"):
        ship_adapter.main(["--run", "tiny", "--as", "tiny"])  # its scores were measured without the decoding
