"""Benchmark one LoRA training step: answer-only loss vs full-vocabulary logits, fp32 vs bf16 autocast.

Each variant (loss x precision) runs in a fresh subprocess, so its peak RSS
(``ru_maxrss``, model load included) is its own. A step is forward + backward + AdamW on a
batch of ``--batch-size`` rows of ``--prompt-len`` prompt tokens followed by ``--answer-len``
answer tokens (random ids, no padding); the first ``--shared-len`` prompt tokens are the same in
every row, as nerre's prompts open with the same instruction and label list. tokens/s counts all
tokens of the batch. Losses:

- ``answer``: nerre's ``answer_loss`` (LM head on answer positions only, shared prefix run once);
- ``answer-noshare``: the same on a batch whose rows share nothing (the LM-head saving alone);
- ``full``: ``model(**batch).loss``, full-vocabulary logits at every position;
- ``candidates``: the candidate-set loss (``data.loss_on: candidates``): the LM head on the rows of the
  tokens the constrained decoder could emit at each answer position. It needs real answers: with
  ``--data``, every variant trains on the same batch of ``--batch-size`` real examples of that corpus,
  tokenized by nerre (prompt, answer and candidate sets as ``nerre fit`` makes them).

    python benchmarks/train_step.py                    # default model, random batch, answer/answer-noshare/full
    python benchmarks/train_step.py --steps 5 --precision bf16
    python benchmarks/train_step.py --data conll2003/train.txt --loss answer full candidates --precision fp32 \
        --name train_step_candidates

Writes benchmarks/results/train_step.json and train_step.md and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerre.atomic import write_text
from nerre.losses import CandidateBatch, answer_loss
from nerre.models import DEFAULT_MODEL, cpu_has_native_bf16, load_model, resolve_model

LOSSES = ("answer", "answer-noshare", "full", "candidates")
PRECISIONS = ("fp32", "bf16")
RESULT_PREFIX = "RESULT "
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name, local folder or hub id")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=120, help="prompt tokens per row (no loss)")
    parser.add_argument("--answer-len", type=int, default=50, help="answer tokens per row (loss)")
    parser.add_argument("--shared-len", type=int, default=100, help="leading prompt tokens common to all rows")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before the timed ones")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--loss", nargs="+", choices=LOSSES, default=list(LOSSES[:3]))
    parser.add_argument("--data", help="a training corpus (relative to $NERRE_DATA_DIR): batches of real examples")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="train_step", help="stem of the .json/.md files written")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # "loss:precision", run by the parent
    return parser.parse_args(argv)


# ------------------------------------------------------------------ one variant (child process)


def make_batch(vocab_size: int, args: argparse.Namespace, shared_len: int) -> dict[str, torch.Tensor]:
    """Random token ids, the first ``shared_len`` the same in every row; labels are -100 on the prompt part."""
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch_size, args.prompt_len + args.answer_len)
    input_ids = torch.randint(4, vocab_size, shape, generator=generator)
    input_ids[:, :shared_len] = input_ids[0, :shared_len]
    labels = input_ids.clone()
    labels[:, : args.prompt_len] = -100
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def real_batch(args: argparse.Namespace) -> dict[str, Any]:
    """``--batch-size`` seeded examples of ``--data``, collated by nerre with their candidate sets."""
    from nerre.datamodule import ExtractionData

    data = ExtractionData(train=args.data, model=args.model, loss_on="candidates", max_train_examples=args.batch_size,
                          seed=0)
    rows = data.tokenized("train")
    data.max_sequence_tokens = max(len(ids) for ids in rows["input_ids"])
    return data._collate_train([rows[i] for i in range(len(rows))])


def lora_model(model_path: str, args: argparse.Namespace) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    model = load_model(model_path, dtype=torch.float32)
    config = LoraConfig(
        r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=args.lora_dropout, target_modules="all-linear"
    )
    return get_peft_model(model, config).train()


def train_step(model, optimizer, batch, loss_kind: str, precision: str) -> float:
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    with autocast:
        if loss_kind == "full":
            loss = model(**inputs).loss
        elif loss_kind == "candidates":
            candidates = CandidateBatch(batch["candidate_vocab"], batch["candidate_allowed"], batch["candidate_full"])
            loss = answer_loss(model, **inputs, candidates=candidates)
        else:
            loss = answer_loss(model, **inputs)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    loss_kind, precision = args.variant.split(":")
    torch.manual_seed(0)
    model = lora_model(args.model, args)
    if args.data:
        batch = real_batch(args)
    elif loss_kind == "candidates":
        raise SystemExit("the candidates loss needs real answers: give --data")
    else:
        batch = make_batch(model.config.vocab_size, args, 0 if loss_kind == "answer-noshare" else args.shared_len)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    losses, times = [], []
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        losses.append(train_step(model, optimizer, batch, loss_kind, precision))
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    step_s = sum(times) / len(times)
    return {
        "loss": loss_kind,
        "precision": precision,
        "step_s": round(step_s, 3),
        "tokens_per_s": round(float(batch["attention_mask"].sum()) / step_s, 1),
        "answer_positions": int((batch["labels"][:, 1:] != -100).sum()),
        "candidate_rows": len(batch["candidate_vocab"]) if loss_kind == "candidates" else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "first_loss": round(losses[0], 4),
    }


# ------------------------------------------------------------------ the parent


def spawn_variant(variant: str, model_path: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one variant in a fresh interpreter and parse its result line."""
    options = ("batch_size", "prompt_len", "answer_len", "shared_len", "steps", "warmup", "lora_r", "lora_dropout")
    command = [sys.executable, __file__, "--model", model_path, "--variant", variant]
    if args.data:
        command += ["--data", args.data]
    for name in options:
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"variant {variant} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def add_speedups(results: list[dict[str, Any]]) -> None:
    """Tokens/s of each variant relative to the full-logits variant of the same precision."""
    full = {r["precision"]: r["tokens_per_s"] for r in results if r["loss"] == "full"}
    answer = {r["precision"]: r["tokens_per_s"] for r in results if r["loss"] == "answer"}
    for r in results:
        if r["precision"] in full:
            r["speedup_vs_full"] = round(r["tokens_per_s"] / full[r["precision"]], 2)
        if r["precision"] in answer:
            r["speedup_vs_answer"] = round(r["tokens_per_s"] / answer[r["precision"]], 2)


def markdown_table(results: list[dict[str, Any]], config: dict[str, Any]) -> str:
    if config.get("data"):
        shape = (f"batch of {config['batch_size']} real examples of `{config['data']}` (seed 0) as `nerre fit` "
                 f"tokenizes them ({results[0]['answer_positions']} answer positions), ")
    else:
        shape = (f"batch {config['batch_size']} x ({config['prompt_len']} prompt + {config['answer_len']} answer) "
                 f"tokens, the first {config['shared_len']} common to all rows (except in `answer-noshare`), ")
    head = (
        f"Model `{config['model']}`, LoRA r={config['lora_r']} all-linear, {shape}"
        f"{config['steps']} timed step(s) after {config['warmup']} warm-up, "
        f"{config['threads']} torch threads on {config['cpu_count']} CPUs (native bf16: {config['native_bf16']}), "
        f"torch {config['torch']}, transformers {config['transformers']}.\n\n"
        "| loss | precision | s/step | tokens/s | vs full | vs answer | peak RSS (GB) | loss at step 1 |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = [
        f"| {r['loss']} | {r['precision']} | {r['step_s']:.2f} | {r['tokens_per_s']:.1f} | "
        f"{r.get('speedup_vs_full', float('nan')):.2f}x | {r.get('speedup_vs_answer', float('nan')):.2f}x | "
        f"{r['peak_rss_mb'] / 1024:.2f} | {r['first_loss']:.4f} |"
        for r in results
    ]
    notes = [
        (
            "\nTokens/s counts every token of the batch (prompt + answer, no padding); peak RSS is `ru_maxrss` of a fresh "
            "process per variant, model load included; the same seed gives the same step-1 loss for `answer` and `full`."
        )
    ]
    if not config["native_bf16"] and any(r["precision"] == "bf16" for r in results):
        notes.append("This CPU has no native bf16 matmul: bf16 autocast runs emulated kernels, far slower than fp32.")
    load = config.get("loadavg_after")
    if load and load[0] > config["cpu_count"]:
        notes.append(f"Other processes shared the CPUs (1-min load average {load[0]:.1f}): absolute speeds are low.")
    return head + "\n".join(rows) + "\n" + "\n\n".join(notes) + "\n"


def run_all(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    if "bf16" in args.precision and not cpu_has_native_bf16():
        print("warning: this CPU has no native bf16 matmul; bf16 autocast will be much slower than fp32", flush=True)
    model_path = resolve_model(args.model)  # convert the default model once, outside the timings
    results = []
    for precision in args.precision:
        for loss_kind in args.loss:
            result = spawn_variant(f"{loss_kind}:{precision}", model_path, args)
            print(json.dumps(result), flush=True)
            results.append(result)
    add_speedups(results)
    import transformers

    config = {
        "model": args.model,
        "model_path": model_path,
        "data": args.data,
        "batch_size": args.batch_size,
        "prompt_len": args.prompt_len,
        "answer_len": args.answer_len,
        "shared_len": args.shared_len,
        "steps": args.steps,
        "warmup": args.warmup,
        "lora_r": args.lora_r,
        "lora_dropout": args.lora_dropout,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "native_bf16": cpu_has_native_bf16(),
        "loadavg_after": os.getloadavg(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_table(results, config)
    write_text(args.output_dir / f"{args.name}.json",
        json.dumps({"config": config, "results": results}, indent=2) + "\n"
    )
    write_text(args.output_dir / f"{args.name}.md", "# Training step: answer-only loss vs full logits\n\n" + table)
    print(table)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.variant:
        print(RESULT_PREFIX + json.dumps(run_variant(args)), flush=True)
    else:
        run_all(args)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
