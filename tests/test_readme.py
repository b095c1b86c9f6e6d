"""The README's results table is the committed result files, rendered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import results_table  # noqa: E402

README_TEMPLATE = (f"x\n{results_table.START}\nold\n{results_table.END}\ny\n"
                   f"{results_table.ABLATIONS_START}\nold\n{results_table.ABLATIONS_END}\nz\n")


def test_readme_results_table_matches_the_result_files():
    readme = (ROOT / "README.md").read_text()
    assert results_table.render(readme) == readme, "run: python benchmarks/results_table.py"


def test_results_table_changes_with_the_files(tmp_path):
    source = next(results_table.RESULTS.glob("*/result.json"))
    (tmp_path / "run-a").mkdir()
    result = json.loads(source.read_text())
    result["entities"]["f1"] = 0.12345
    (tmp_path / "run-a" / "result.json").write_text(json.dumps(result))
    rendered = results_table.render(README_TEMPLATE, tmp_path)
    assert "/ 12.35 |" in rendered and "old" not in rendered and rendered.endswith(f"{results_table.ABLATIONS_END}\nz\n")
    assert "No ablation results yet" in rendered


def test_ablations_table_has_a_row_per_variant_and_for_unconstrained_decoding(tmp_path):
    result = json.loads(next(results_table.RESULTS.glob("*/result.json")).read_text())
    for name, f1, defects in [("baseline", 0.8, {}), ("json", 0.7, {"wrong_offsets": 3, "invalid_json": 2})]:
        (tmp_path / "ablations" / name).mkdir(parents=True)
        variant = {**result, "entities": {**result["entities"], "f1": f1}, "defects": defects}
        if name == "baseline":
            variant["unconstrained"] = {**{k: result[k] for k in ("entities", "relations", "recall_seen_unseen")},
                                        "defects": {"hallucinated_entity": 4}, "predict_sentences_per_s": 0.3}
        (tmp_path / "ablations" / name / "result.json").write_text(json.dumps(variant))
    rendered = results_table.render(README_TEMPLATE, tmp_path)
    rows = [line for line in rendered.splitlines() if line.startswith("| ") and "`" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| baseline", "| baseline, unconstrained", "| json"]
    assert "/ 80.00 |" in rows[0] and "`--data.formulation json`" in rows[2]
    assert rows[1].split(" | ")[-4:-2] == ["4", "4"]  # defects, of which hallucinated or misplaced
    assert rows[2].split(" | ")[-4:-2] == ["5", "3"]
    assert result["command"] in rendered and "comparison.png" in rendered


def test_readme_without_markers_is_named_in_the_error():
    with pytest.raises(ValueError, match="README.md has no <!-- results:start --> ... <!-- results:end --> markers"):
        results_table.render("# a README without a results section\n")


def test_readme_without_ablation_markers_is_named_in_the_error():
    readme = f"x\n{results_table.START}\nold\n{results_table.END}\ny\n"
    with pytest.raises(ValueError, match="README.md has no <!-- ablations:start --> ... <!-- ablations:end --> markers"):
        results_table.render(readme)


def test_a_run_without_a_logged_training_speed_shows_n_a_not_zero(tmp_path):
    import run

    result = json.loads((ROOT / "benchmarks" / "results" / "conll04-cpu-2ep" / "result.json").read_text())
    result["train_tokens_per_s"] = None  # a run shorter than log_every_n_steps logs no speed
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "result.json").write_text(json.dumps(result))
    assert "| training tokens/s | n/a |" in run.markdown(result)
    assert "| 0 | n/a | 1.42 |" in results_table.table(tmp_path)
