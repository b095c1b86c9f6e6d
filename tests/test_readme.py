"""The README's results table is the committed result files, rendered."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import results_table  # noqa: E402


def test_readme_results_table_matches_the_result_files():
    readme = (ROOT / "README.md").read_text()
    assert results_table.render(readme) == readme, "run: python benchmarks/results_table.py"


def test_results_table_changes_with_the_files(tmp_path):
    source = next(results_table.RESULTS.glob("*/result.json"))
    (tmp_path / "run-a").mkdir()
    shutil.copy(source, tmp_path / "run-a" / "result.json")
    result = json.loads(source.read_text())
    result["entities"]["f1"] = 0.12345
    (tmp_path / "run-a" / "result.json").write_text(json.dumps(result))
    rendered = results_table.render(f"x\n{results_table.START}\nold\n{results_table.END}\ny\n", tmp_path)
    assert "/ 12.35 |" in rendered and "old" not in rendered and rendered.endswith(f"{results_table.END}\ny\n")
