"""Throughput of ``nerre serve``: ``--requests`` short requests sent one after another, then all at once.

Starts ``nerre serve`` on a free local port (127.0.0.1) with ``--adapter`` (default: a tiny random one
from ``tests/tiny.py``, which measures the server rather than the model), waits for ``/health``, sends
``--requests`` requests of one sentence each sequentially and then concurrently (one thread per request),
checks that both runs got the same answers, and stops the server. LitServe gathers concurrent requests into
batches of up to ``--max-batch-size`` (waiting ``--batch-timeout`` seconds for more).

    python benchmarks/serve_speed.py --adapter conll04 --threads 2                          # float32
    python benchmarks/serve_speed.py --adapter conll04 --threads 2 --precision bf16-true --merge
    python benchmarks/serve_speed.py            # the tiny random adapter

The answers of both runs are compared twice: the predictions alone (entities and relations), and with their
scores (float rounding can differ with the requests batched together). Writes
benchmarks/results/serve_speed-<precision>[-merged].json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SENTENCES = ["John Smith works for Acme Corp in New York .", "Marie Curie was born in Warsaw and worked in Paris .",
             "Aspirin can cause stomach bleeding in some patients .", "EU rejects German call to boycott British lamb .",
             "Peter Blackburn lives in Brussels ."]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", help="adapter folder or shipped name (default: a tiny random one)")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--max-batch-size", type=int, default=8, help="nerre serve --max_batch_size")
    parser.add_argument("--batch-timeout", type=float, default=0.05, help="nerre serve --batch_timeout")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the server")
    parser.add_argument("--precision", default="32-true", help="nerre serve --precision")
    parser.add_argument("--merge", action="store_true", help="nerre serve --merge true")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds to wait for the server")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(adapter: str, port: int, args: argparse.Namespace) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    command = [sys.executable, "-m", "nerre.cli", "serve", "--adapter", adapter, "--port", str(port),
               "--max_batch_size", str(args.max_batch_size), "--batch_timeout", str(args.batch_timeout),
               "--timeout", "600", "--precision", args.precision, "--merge", str(args.merge).lower()]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_ready(client: Any, url: str, process: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nerre serve stopped: {process.stderr.read().decode()[-2000:]}")
        try:
            if client.get(f"{url}/health", timeout=2).text.strip('"') == "ok":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"nerre serve did not answer /health within {timeout} s")


def timed_post(client: Any, url: str, text: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    answer = client.post(f"{url}/predict", json={"text": text})
    answer.raise_for_status()
    return time.perf_counter() - started, answer.json()


def run(label: str, client: Any, url: str, texts: list[str], workers: int) -> dict[str, Any]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda t: timed_post(client, url, t), texts))
    seconds = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    return {"mode": label, "requests": len(texts), "seconds": round(seconds, 3),
            "requests_per_s": round(len(texts) / seconds, 2),
            "latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "latency_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
            "answers": [r[1] for r in results]}


def markdown(report: dict[str, Any]) -> str:
    config = report["config"]
    lines = [f"`nerre serve` throughput: {config['adapter']}, {config['requests']} one-sentence requests, max batch "
             f"{config['max_batch_size']} (timeout {config['batch_timeout']} s), precision {config['precision']}"
             f"{', merged' if config['merge'] else ''}, {config['device']}.", "",
             "| mode | seconds | requests/s | p50 latency ms | p95 latency ms |", "|---|---:|---:|---:|---:|"]
    for r in report["runs"]:
        lines.append(f"| {r['mode']} | {r['seconds']:.2f} | {r['requests_per_s']:.2f} | {r['latency_p50_ms']:.0f} | "
                     f"{r['latency_p95_ms']:.0f} |")
    lines += ["", f"Concurrent / sequential throughput: {report['speedup']:.2f}x; same predictions: "
              f"{report['same_predictions']}; same scores too: {report['same_answers']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import httpx

    from nerre.atomic import write_text
    from nerre.prediction_file import unscored

    args = parse_args(argv)
    texts = [SENTENCES[i % len(SENTENCES)] for i in range(args.requests)]
    with tempfile.TemporaryDirectory(prefix="nerre-serve-") as scratch:
        adapter = args.adapter
        if adapter is None:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny import tiny_adapter

            adapter = str(tiny_adapter(Path(scratch) / "tiny", max_sequence_tokens=256))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start(adapter, port, args)
        try:
            with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=args.requests)) as client:
                wait_ready(client, url, process, args.start_timeout)
                timed_post(client, url, texts[0])  # warm-up
                runs = [run("sequential", client, url, texts, 1), run("concurrent", client, url, texts, args.requests)]
        finally:
            os.killpg(process.pid, signal.SIGTERM)  # the server and its workers, started here
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    same = runs[0]["answers"] == runs[1]["answers"]
    same_predictions = unscored(runs[0]["answers"]) == unscored(runs[1]["answers"])
    for r in runs:
        del r["answers"]
    config = {"adapter": args.adapter or "tiny random adapter (tests/tiny.py)", "requests": args.requests,
              "max_batch_size": args.max_batch_size, "batch_timeout": args.batch_timeout, "threads": args.threads,
              "precision": args.precision, "merge": args.merge,
              "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                        f"load {os.getloadavg()[0]:.1f}"}
    report = {"config": config, "runs": runs, "speedup": round(runs[1]["requests_per_s"] / runs[0]["requests_per_s"], 2),
              "same_predictions": same_predictions, "same_answers": same}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    name = f"serve_speed-{args.precision}" + ("-merged" if args.merge else "")
    write_text(args.output_dir / f"{name}.json", json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    write_text(args.output_dir / f"{name}.md", table)
    print(table)
    return report


if __name__ == "__main__":
    main()
