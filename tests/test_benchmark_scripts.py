"""Benchmark scripts' own arithmetic: the cross-validation summary of benchmarks/folds.py, and which adapter
benchmarks/run.py tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _result(folder: Path, entities: tuple[int, int, int], strict: tuple[int, int, int]) -> None:
    def scores(gold: int, predicted: int, correct: int) -> dict:
        p, r = correct / predicted, correct / gold
        return {"gold": gold, "predicted": predicted, "correct": correct, "precision": p, "recall": r,
                "f1": 2 * p * r / (p + r)}

    folder.mkdir(parents=True)
    result = {"command": f"python benchmarks/run.py --name {folder.name}", "steps": 10, "fit_seconds": 600,
              "data": ["ade/ade_split_0_train.json", "ade/ade_split_0_test.json"],
              "entities": scores(*entities), "relations": {"strict": scores(*strict), "boundaries": scores(*strict)}}
    (folder / "result.json").write_text(json.dumps(result))


def test_folds_macro_averages_f1_and_micro_pools_counts(tmp_path, monkeypatch):
    import folds

    monkeypatch.setattr(folds, "RESULTS", tmp_path)
    _result(tmp_path / "ade-fold0", (100, 100, 90), (10, 10, 5))  # relation F1 50
    _result(tmp_path / "ade-fold1", (100, 100, 70), (90, 90, 81))  # relation F1 90
    summary = folds.main(["--name", "ade", "--runs", "ade-fold0", "ade-fold1"])
    assert summary["macro"]["relations strict"] == pytest.approx(70.0)  # mean of 50 and 90
    assert summary["micro"]["relations strict"] == pytest.approx(86.0)  # 86 of 100 pooled
    assert summary["macro"]["entities"] == pytest.approx(80.0)
    table = (tmp_path / "folds" / "ade.md").read_text()
    assert "2 of 10 folds" in table and "not the published protocol's" in table


def test_folds_needs_a_config_to_run_and_something_to_summarise(tmp_path, monkeypatch):
    import folds

    monkeypatch.setattr(folds, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="--config"):
        folds.main(["--name", "ade", "--folds", "0"])
    with pytest.raises(SystemExit, match="nothing to summarise"):
        folds.main(["--name", "ade"])


def test_a_fold_runs_run_py_from_the_repository_so_its_recorded_command_names_no_machine_path(tmp_path, monkeypatch):
    import folds

    calls = []
    monkeypatch.setattr(folds, "RESULTS", tmp_path)
    monkeypatch.setattr(folds.subprocess, "run", lambda command, **kwargs: calls.append((command, kwargs)))
    monkeypatch.chdir(folds.ROOT / "configs")  # a config named from elsewhere
    _result(tmp_path / "ade-fold3", (100, 100, 90), (10, 10, 5))
    folds.main(["--name", "ade", "--config", "ade.yaml", "--folds", "3", "--max-steps", "9"])
    ((command, kwargs),) = calls
    assert command[1:] == ["benchmarks/run.py", "--config", "configs/ade.yaml", "--name", "ade-fold3", "--data.train",
                           "ade/ade_split_3_train.json", "--data.test", "ade/ade_split_3_test.json", "--max-steps", "9"]
    assert kwargs == {"check": True, "cwd": folds.ROOT}


def test_run_tests_the_averaged_adapter_and_keeps_the_unaveraged_scores_beside_it(tiny_model_dir, tmp_path):
    """Two epochs of two steps on train+dev with ``--adapter.average_last 2``: the average is the run's result."""
    from common import protocol, run_adapter
    from conftest import TINY_CONFIG, TINY_DATA
    from run import run_benchmark

    overrides = ["--model.init_args.model", str(tiny_model_dir), "--data.data_dir", str(TINY_DATA),
                 "--data.cache_dir", str(tmp_path / "cache"), "--data.train_dev", "true",
                 "--adapter.average_last", "2", "--trainer.max_epochs", "2"]
    result = run_benchmark(TINY_CONFIG, "tiny", max_steps=4, fit_overrides=overrides, test_limit=2, results=tmp_path)
    assert result["tested_adapter"] == "adapter_averaged" and result["steps"] == 4
    assert set(result["unaveraged"]) == {"entities", "relations", "defects"}
    assert (tmp_path / "tiny" / "predictions_unaveraged.jsonl").read_text().count("\n") == 2
    assert "| not averaged |" in (tmp_path / "tiny" / "result.md").read_text()
    assert run_adapter(tmp_path / "tiny").name == "adapter_averaged"
    assert protocol(tmp_path / "tiny").startswith("train+dev, average of the last 2 epochs; ")
