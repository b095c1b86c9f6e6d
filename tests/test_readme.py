"""The README's results table is the committed result files, rendered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import results_table  # noqa: E402


def test_readme_results_table_matches_the_result_files():
    readme = (ROOT / "README.md").read_text()
    assert results_table.render(readme) == readme, "run: python benchmarks/results_table.py"


def test_results_table_changes_with_the_files(tmp_path):
    source = next(results_table.RESULTS.glob("*/result.json"))
    (tmp_path / "run-a").mkdir()
    result = json.loads(source.read_text())
    result["entities"]["f1"] = 0.12345
    (tmp_path / "run-a" / "result.json").write_text(json.dumps(result))
    rendered = results_table.render(f"x\n{results_table.START}\nold\n{results_table.END}\ny\n", tmp_path)
    assert "/ 12.35 |" in rendered and "old" not in rendered and rendered.endswith(f"{results_table.END}\ny\n")


def test_readme_without_markers_is_named_in_the_error():
    with pytest.raises(ValueError, match="README.md has no <!-- results:start --> ... <!-- results:end --> markers"):
        results_table.render("# a README without a results section\n")
