"""Peak memory of ``nerre predict`` against input size: streamed inputs keep it flat.

For each size in ``--lines`` and each input format in ``--formats`` (raw text, JSONL records, CoNLL
columns; every line or record a short sentence), one ``nerre predict`` runs in a fresh process and
reports its peak resident memory (``VmHWM``), and how far that is above its memory once the model is
loaded (the working memory of reading, decoding and writing). Without ``--adapter`` the model is a tiny random one
(``tests/tiny.py``'s ``tiny_adapter`` with a small ``max_sequence_tokens``, so the grammar completes most
answers and a run is quick): it measures the reading, decoding and writing machinery, not predictions.
The check: the largest input's peak is within ``--tolerance`` (10%) of the smallest one's.

    nice -n 19 python benchmarks/predict_memory.py                       # 10,000 and 100,000 lines of text
    nice -n 19 python benchmarks/predict_memory.py --formats text jsonl conll

Writes benchmarks/results/predict_memory.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SENTENCES = ["John Smith works for Acme Corp in New York .", "Marie Curie was born in Warsaw and worked in Paris .",
             "Aspirin can cause stomach bleeding in some patients .", "The model predicts entities and relations ."]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 100_000], help="input sizes (sentences)")
    parser.add_argument("--formats", nargs="+", choices=("text", "jsonl", "conll"), default=["text"])
    parser.add_argument("--adapter", help="adapter folder or shipped name (default: a tiny random one)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tolerance", type=float, default=0.10, help="largest peak / smallest peak - 1, at most")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--child", nargs=4, metavar=("ADAPTER", "INPUT", "OUTPUT", "BATCH"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_input(path: Path, fmt: str, lines: int) -> Path:
    """``lines`` sentences in ``fmt``, written as they are made."""
    with path.open("w", encoding="utf-8") as f:
        for n in range(lines):
            sentence = SENTENCES[n % len(SENTENCES)]
            if fmt == "text":
                f.write(sentence + "\n")
            elif fmt == "jsonl":
                f.write(json.dumps({"id": f"s{n}", "text": sentence, "entities": []}) + "\n")
            else:
                f.write("".join(f"{token} O\n" for token in sentence.split()) + "\n")
    return path


def child(adapter: str, source: str, output: str, batch_size: str) -> None:
    """One prediction run; prints its summary and peak memory as JSON."""
    import nerre.predict

    load, loaded = nerre.predict.Extractor.load.__func__, []

    def recorded(cls: Any, *args: Any, **kwargs: Any) -> Any:
        extractor = load(cls, *args, **kwargs)
        loaded.append(memory_kib("VmRSS"))  # the memory before any text is read
        return extractor

    nerre.predict.Extractor.load = classmethod(recorded)
    summary = nerre.predict.predict(adapter=adapter, input=source, output=output, batch_size=int(batch_size))
    peak = memory_kib("VmHWM")
    print(json.dumps({"peak_mib": round(peak / 1024, 1), "loaded_mib": round(loaded[0] / 1024, 1),
                      "summary": summary}))


def memory_kib(field: str) -> int:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process, on Linux; else the peak, ``ru_maxrss`` (which keeps
    the high-water mark of the process that started this one, across ``exec``: not used on Linux)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(adapter: str, source: Path, output: Path, batch_size: int) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", adapter, str(source), str(output), str(batch_size)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise RuntimeError(f"nerre predict failed on {source}: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def markdown(report: dict[str, Any]) -> str:
    config = report["config"]
    lines = [f"Peak memory of `nerre predict` ({config['adapter']}, batch size {config['batch_size']}, {config['device']}).",
             "", "| format | input lines | peak MiB | peak above the loaded model, MiB | seconds | sentences/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        lines.append(f"| {r['format']} | {r['lines']:,} | {r['peak_mib']:.1f} | {r['above_loaded_mib']:.1f} | "
                     f"{r['wall_seconds']:.0f} | "
                     f"{r['sentences_per_s']} |")
    lines.append("")
    for fmt, check in report["checks"].items():
        lines.append(f"{fmt}: the largest input's peak is {100 * check['growth']:+.1f}% of the smallest one's "
                     f"({'flat' if check['flat'] else 'NOT flat'}: tolerance {100 * config['tolerance']:.0f}%).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        child(*args.child)
        return {}
    from nerre.atomic import write_text

    with tempfile.TemporaryDirectory(prefix="nerre-memory-") as scratch:
        scratch = Path(scratch)
        adapter = args.adapter
        if adapter is None:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny import tiny_adapter

            adapter = str(tiny_adapter(scratch / "tiny", max_sequence_tokens=256))
        runs = []
        for fmt in args.formats:
            for lines in sorted(args.lines):
                source = write_input(scratch / f"input-{lines}.{fmt}", fmt, lines)
                result = measure(adapter, source, scratch / "predictions.jsonl", args.batch_size)
                runs.append({"format": fmt, "lines": lines, "peak_mib": result["peak_mib"],
                             "above_loaded_mib": round(result["peak_mib"] - result["loaded_mib"], 1),
                             "wall_seconds": result["wall_seconds"],
                             "sentences_per_s": result["summary"]["sentences_per_s"],
                             "examples": result["summary"]["examples"]})
                print(f"{fmt} {lines} lines: peak {result['peak_mib']} MiB, {result['wall_seconds']} s", flush=True)
                source.unlink()
    checks = {}
    for fmt in args.formats:
        peaks = [r["peak_mib"] for r in runs if r["format"] == fmt]
        growth = peaks[-1] / peaks[0] - 1
        checks[fmt] = {"growth": round(growth, 4), "flat": growth <= args.tolerance}
    config = {"adapter": args.adapter or "tiny random adapter (tests/tiny.py)", "batch_size": args.batch_size,
              "tolerance": args.tolerance,
              "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                        f"load {os.getloadavg()[0]:.1f}"}
    report = {"config": config, "runs": runs, "checks": checks}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_text(args.output_dir / "predict_memory.json", json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    write_text(args.output_dir / "predict_memory.md", table)
    print(table)
    return report


if __name__ == "__main__":
    main()
