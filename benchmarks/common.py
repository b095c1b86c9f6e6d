"""What the benchmark scripts share: where results live and how figures are written.

``run.py``, ``ablations.py`` and ``results_table.py`` import from here (and not from each other in a circle):
``results_table`` imports ``ablations``, which imports ``run``, which imports only this module.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def pct(value: float | None) -> str:
    """A fraction as a percentage with two decimals, or empty when there is none."""
    return "" if value is None else f"{100 * value:.2f}"


def rate(value: float | None, digits: int = 0) -> str:
    """A speed, or ``n/a`` when the run logged none (a run shorter than ``log_every_n_steps``)."""
    return "n/a" if value is None else f"{value:.{digits}f}"
