"""One benchmark, one command: train a config under a step or time budget, predict its test split, evaluate.

    python benchmarks/run.py --config configs/conll04.yaml --name conll04-cpu --max-steps 300

It writes ``benchmarks/results/<name>/``:

- ``result.json``: entity P/R/F1 overall and per type, relation F1 (strict and boundaries), recall on
  seen and unseen mentions, defects, training tokens/s, prediction sentences/s, peak memory, wall times,
  model, adapter settings, seed, data files (relative to the data folder) with their SHA-256, git commit, and the exact command;
- ``result.md``: the same as a Markdown table;
- ``breakdown.json`` and ``breakdown.md`` (runs with relations): the error breakdown of the test predictions
  (:mod:`nerre.breakdown`; ``benchmarks/breakdown.py`` regenerates it for an existing folder);
- ``learning_curve.png`` (training loss and dev F1 against steps) and ``per_type_f1.png``;
- with ``--adapter.average_last N``, the averaged adapter (``adapter_averaged/``) is the one tested, and the
  dev-selected or last-step adapter's test scores are kept beside it (``unaveraged``, ``predictions_unaveraged.jsonl``);
- ``predictions.jsonl`` and the run folder (``run/``: config.yaml, metrics.csv, checkpoints, adapter).

Any further arguments go to ``nerre fit`` unchanged (``--data.max_train_examples 2000``, ...).
Re-running the same command with the same seed on the same machine gives the same scores.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from breakdown import run_breakdown
from common import RESULTS, ROOT, rate

from nerre.atomic import write_text


def data_files(paths: Any, data_dir: Path) -> dict[str, str]:
    """The SHA-256 of each data file, by its path relative to the data folder (no machine's absolute paths)."""
    from nerre.models import file_sha256  # torch and transformers load only when a benchmark runs

    files = {}
    for path in paths:
        if path.is_file():
            try:
                name = path.resolve().relative_to(Path(data_dir).resolve()).as_posix()
            except ValueError:  # a file outside the data folder: its name alone
                name = path.name
            files[name] = file_sha256(path)
    return files


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "nerre", "configs"], cwd=ROOT, capture_output=True,
                               text=True, check=True)
        return commit.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    files = sorted(run_dir.glob("**/metrics.csv"))
    return list(csv.DictReader(files[-1].open())) if files else []


def series(rows: list[dict[str, str]], key: str) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]


def predict_split(adapter: Path | str, examples: list, constrained: bool | None, batch_size: int, output: Path,
                  **extractor_options: Any) -> dict:
    """Predict ``examples`` with the saved adapter; time it and write the prediction JSONL.
    ``extractor_options``: more :class:`nerre.predict.Extractor` settings (``signatures``, ``signatures_from``)."""
    from nerre.loaders import write_jsonl
    from nerre.predict import Extractor

    extractor = Extractor.load(adapter, constrained=constrained, batch_size=batch_size, **extractor_options)
    started = time.perf_counter()
    predictions = list(extractor.predict(examples, progress=True))
    seconds = time.perf_counter() - started
    write_jsonl([p.example for p in predictions], output)
    defects: Counter = Counter()
    for p in predictions:
        defects.update(p.defects)
    return {"predictions": [p.example for p in predictions], "seconds": seconds, "defects": dict(defects),
            "constrained": extractor.constrained, "schema": extractor.formulation.schema}


def run_benchmark(config: Path, name: str, max_steps: int | None = None, max_time: str | None = None,
                  fit_overrides: list[str] | None = None, test_limit: int | None = None,
                  compare_unconstrained: bool = False, batch_size: int = 8, results: Path = RESULTS) -> dict:
    """Train, predict and evaluate one configuration; write and return the result."""
    from nerre.cli import run
    from nerre.metrics import evaluate, recall_by_novelty

    out = results / name
    if (out / "run").exists():
        shutil.rmtree(out / "run")
    out.mkdir(parents=True, exist_ok=True)
    args = ["fit", "--config", str(config), "--trainer.default_root_dir", str(out / "run"),
            "--trainer.logger.init_args.save_dir", str(out / "run"), "--trainer.enable_progress_bar", "false"]
    if max_steps:
        args += ["--trainer.max_steps", str(max_steps)]
    if max_time:
        args += ["--trainer.max_time", max_time]
    args += list(fit_overrides or [])

    commit = git_commit()  # the code that runs is the code checked out now, not when the run ends
    started = time.perf_counter()
    cli = run(args)
    fit_seconds = time.perf_counter() - started
    data, trainer = cli.datamodule, cli.trainer
    tested, unaveraged = Path(trainer.log_dir) / "adapter", None
    if tested.with_name("adapter_averaged").is_dir():  # adapter.average_last N: the average is the run's result
        tested, unaveraged = tested.with_name("adapter_averaged"), tested
    test = data.examples["test"][:test_limit]

    main = predict_split(tested, test, None, batch_size, out / "predictions.jsonl")
    symmetric = data.schema.symmetric_relations
    scores = evaluate(test, main["predictions"], symmetric=symmetric)
    rows = read_metrics(out / "run")
    speeds = [v for _, v in series(rows, "train/tokens_per_s")]
    settings = json.loads((tested / "nerre.json").read_text())
    lora = json.loads((tested / "adapter_config.json").read_text())
    result: dict[str, Any] = {
        "name": name,
        "command": " ".join(["python", *sys.argv]),  # run.py, or ablations.py for a variant
        "config": str(config),
        "overrides": list(fit_overrides or []),
        "model": settings["base_model"],
        "formulation": settings["formulation"],
        "adapter": {k: lora.get(k) for k in ("r", "lora_alpha", "lora_dropout", "target_modules")},
        "seed": cli.config["fit"]["seed_everything"],
        "tested_adapter": tested.name,
        "steps": trainer.global_step,
        "train_examples": len(data.examples["train"]),
        "test_examples": len(test),
        "data": data_files([path for files in data.files.values() for path in files], data.data_dir),
        "git_commit": commit,
        "entities": scores["entities"],
        "relations": scores["relations"],
        "recall_seen_unseen": recall_by_novelty(test, main["predictions"], data.examples.get("train", [])),
        "defects": main["defects"],
        "constrained": main["constrained"],
        "train_tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
        "predict_sentences_per_s": len(test) / main["seconds"],
        "fit_seconds": round(fit_seconds, 1),
        "predict_seconds": round(main["seconds"], 1),
        "peak_memory_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "machine": machine(),
    }
    if unaveraged is not None:  # the averaged adapter was tested: the dev-selected or last-step weights beside it
        single = predict_split(unaveraged, test, None, batch_size, out / "predictions_unaveraged.jsonl")
        single_scores = evaluate(test, single["predictions"], symmetric=symmetric)
        result["unaveraged"] = {"entities": single_scores["entities"], "relations": single_scores["relations"],
                                "defects": single["defects"]}
    if compare_unconstrained and main["constrained"]:
        free = predict_split(tested, test, False, batch_size, out / "predictions_unconstrained.jsonl")
        free_scores = evaluate(test, free["predictions"], symmetric=symmetric)
        result["unconstrained"] = {  # the same adapter, free generation read by the tolerant parser
            "entities": free_scores["entities"],
            "relations": free_scores["relations"],
            "recall_seen_unseen": recall_by_novelty(test, free["predictions"], data.examples.get("train", [])),
            "defects": free["defects"],
            "predict_sentences_per_s": len(test) / free["seconds"],
            "predict_seconds": round(free["seconds"], 1),
        }
    write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    write_text(out / "result.md", markdown(result))
    if data.schema.relations:  # why relations are missed: breakdown.json and .md (benchmarks/breakdown.py)
        train_files = " + ".join(data_files(data.files.get("train", []), data.data_dir)) or "nothing"
        run_breakdown(data.schema, data.examples.get("train", []), test, main["predictions"], out,
                      f"Error breakdown: {name}", f"of the run (declared in {config}, else inferred from {train_files})")
    plot(result, rows, out)
    return result


def machine() -> str:
    import os
    import platform

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    return f"{platform.machine()}, {device}, torch {torch.__version__}"


def markdown(result: dict) -> str:
    e, r = result["entities"], result["relations"]
    lines = [
        f"# {result['name']}",
        "",
        f"`{result['command']}`",
        "",
        f"Model `{result['model']}`, {result['formulation']} formulation, LoRA r={result['adapter']['r']}, "
        f"{result['steps']} steps on {result['train_examples']} training examples, seed {result['seed']}, "
        f"{result['test_examples']} test examples, {'constrained' if result['constrained'] else 'free'} decoding, "
        f"{result['machine']}, commit {result['git_commit']}.",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| entity precision | {100 * e['precision']:.2f} |",
        f"| entity recall | {100 * e['recall']:.2f} |",
        f"| entity F1 | {100 * e['f1']:.2f} |",
        *([f"| relation F1, strict | {100 * r['strict']['f1']:.2f} |",
           f"| relation F1, boundaries | {100 * r['boundaries']['f1']:.2f} |"] if r["strict"]["gold"] else []),
        f"| recall on seen / unseen mentions | {100 * result['recall_seen_unseen']['seen']['recall']:.2f} / "
        f"{100 * result['recall_seen_unseen']['unseen']['recall']:.2f} |",
        f"| defects | {sum(result['defects'].values())} |",
        f"| training tokens/s | {rate(result['train_tokens_per_s'], 1)} |",
        f"| prediction sentences/s | {result['predict_sentences_per_s']:.2f} |",
        f"| peak memory (GB) | {result['peak_memory_gb']} |",
        f"| wall time fit / predict (s) | {result['fit_seconds']} / {result['predict_seconds']} |",
        "",
        "| entity type | precision | recall | F1 | gold |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, s in e["per_label"].items():
        lines.append(f"| {label} | {100 * s['precision']:.2f} | {100 * s['recall']:.2f} | {100 * s['f1']:.2f} | "
                     f"{s['gold']} |")
    if r["strict"]["per_label"]:
        lines += ["", "| relation type | strict F1 | boundaries F1 | gold |", "|---|---:|---:|---:|"]
        for label, s in r["strict"]["per_label"].items():
            b = r["boundaries"]["per_label"].get(label, {"f1": 0.0})
            lines.append(f"| {label} | {100 * s['f1']:.2f} | {100 * b['f1']:.2f} | {s['gold']} |")
    if "unaveraged" in result:
        u = result["unaveraged"]
        lines += ["", "| adapter | entity F1 | relation F1 strict | relation F1 boundaries |", "|---|---:|---:|---:|",
                  f"| averaged (tested) | {100 * e['f1']:.2f} | {100 * r['strict']['f1']:.2f} | "
                  f"{100 * r['boundaries']['f1']:.2f} |",
                  f"| not averaged | {100 * u['entities']['f1']:.2f} | {100 * u['relations']['strict']['f1']:.2f} | "
                  f"{100 * u['relations']['boundaries']['f1']:.2f} |"]
    if "unconstrained" in result:
        u = result["unconstrained"]
        lines += ["", "| decoding | entity F1 | relation F1 strict | defects | sentences/s |", "|---|---:|---:|---:|---:|",
                  f"| constrained | {100 * e['f1']:.2f} | {100 * r['strict']['f1']:.2f} | "
                  f"{sum(result['defects'].values())} | {result['predict_sentences_per_s']:.2f} |",
                  f"| unconstrained | {100 * u['entities']['f1']:.2f} | {100 * u['relations']['strict']['f1']:.2f} | "
                  f"{sum(u['defects'].values())} | {u['predict_sentences_per_s']:.2f} |"]
    return "\n".join(lines) + "\n"


def plot(result: dict, rows: list[dict[str, str]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, loss_axis = plt.subplots(figsize=(7, 4))
    loss = series(rows, "train/loss")
    if loss:
        loss_axis.plot(*zip(*loss), color="tab:blue", label="training loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    f1_axis = loss_axis.twinx()
    for key, colour in (("val/entity_f1", "tab:orange"), ("val/relation_f1", "tab:green")):
        points = series(rows, key)
        if points:
            f1_axis.plot(*zip(*points), "o-", color=colour, label=key.replace("val/", "dev "))
    f1_axis.set_ylabel("dev F1")
    f1_axis.set_ylim(0, 1)
    fig.legend(loc="center right", bbox_to_anchor=(0.85, 0.6))
    fig.suptitle(f"{result['name']}: learning curve")
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=120)
    plt.close(fig)

    per_label = result["entities"]["per_label"]
    fig, axis = plt.subplots(figsize=(7, 4))
    labels = list(per_label)
    axis.bar(labels, [100 * per_label[x]["f1"] for x in labels], color="tab:blue")
    axis.set_ylabel("test F1")
    axis.set_ylim(0, 100)
    axis.set_title(f"{result['name']}: entity F1 per type")
    fig.tight_layout()
    fig.savefig(out / "per_type_f1.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="a nerre fit config")
    parser.add_argument("--name", required=True, help="folder name under benchmarks/results/")
    parser.add_argument("--max-steps", type=int, help="training budget in optimizer steps")
    parser.add_argument("--max-time", help="training budget as DD:HH:MM:SS")
    parser.add_argument("--test-limit", type=int, help="predict only the first N test examples")
    parser.add_argument("--batch-size", type=int, default=8, help="prediction batch size")
    parser.add_argument("--compare-unconstrained", action="store_true",
                        help="also predict with free generation and report its F1 and defects")
    args, fit_overrides = parser.parse_known_args()
    result = run_benchmark(args.config, args.name, args.max_steps, args.max_time, fit_overrides, args.test_limit,
                           args.compare_unconstrained, args.batch_size)
    print(markdown(result))


if __name__ == "__main__":
    main()
