"""What the benchmark scripts share: where results live and how figures are written.

``run.py``, ``ablations.py`` and ``results_table.py`` import from here (and not from each other in a circle):
``results_table`` imports ``ablations``, which imports ``run``, which imports only this module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def pct(value: float | None) -> str:
    """A fraction as a percentage with two decimals, or empty when there is none."""
    return "" if value is None else f"{100 * value:.2f}"


def rate(value: float | None, digits: int = 0) -> str:
    """A speed, or ``n/a`` when the run logged none (a run shorter than ``log_every_n_steps``)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def run_adapter(folder: Path) -> Path | None:
    """The adapter a ``run.py`` folder tested (``adapter/``, or ``adapter_averaged/``), kept under ``run/`` (the
    latest, if several), or None: result folders in the repository keep only the run's config and metrics."""
    result = folder / "result.json"
    name = json.loads(result.read_text()).get("tested_adapter", "adapter") if result.exists() else "adapter"
    found = sorted(folder.glob(f"run/**/{name}/nerre.json"))
    return found[-1].parent if found else None


def protocol(folder: Path) -> str:
    """How a run trained, from the config it saved: on which splits, which adapter was tested (the best on dev,
    or the last step's), in which training precision, and which fold of a cross-validation its files are (names
    with ``split_K`` or ``fold_K``, as ADE's); for a ``tune_decoding.py`` folder, its run's and the decoding
    chosen on dev; empty for a folder without its config."""
    import yaml

    tuned = json.loads((folder / "result.json").read_text()) if (folder / "result.json").exists() else {}
    if tuned.get("tuned_from"):  # benchmarks/tune_decoding.py: the run's adapter, decoded as dev chose
        d = tuned["decoding"]
        return (f"{protocol(folder.parent / tuned['tuned_from'])}; decoding tuned on dev (entity bias "
                f"{d['entity_bias']:+g}, relation bias {d['relation_bias']:+g}, relation score >= "
                f"{d['min_relation_score']:g})")
    configs = sorted(folder.glob("run/lightning_logs/version_*/config.yaml"))
    if not configs:
        return ""
    config = yaml.safe_load(configs[-1].read_text())
    data, trainer = config.get("data") or {}, config.get("trainer") or {}
    averaged = (config.get("adapter") or {}).get("average_last")
    if averaged:
        splits = f"{'train+dev' if data.get('train_dev') else 'train'}, average of the last {averaged} epochs"
    elif data.get("train_dev"):
        splits = "train+dev, last step"
    elif data.get("val"):
        splits = "train, best on dev"
    else:
        splits = "train, last step"
    train = data.get("train") or ""
    fold = re.search(r"(?:split|fold)[_-]?(\d+)", " ".join(train) if isinstance(train, list) else str(train))
    return f"{splits}; {trainer.get('precision', '?')}" + (f"; fold {fold.group(1)} of a cross-validation" if fold else "")
