"""How well entity scores are calibrated: expected calibration error and a reliability diagram.

Every predicted entity is a (score, correct) pair, correct when the gold holds the same span and label.
The pairs go into ``--bins`` equal-width score bins; ECE = sum over bins of (bin size / pairs) x
|accuracy - mean score|. The diagram plots each bin's accuracy against its mean score (perfect: the diagonal).

With ``--dev``, a temperature of the score softmax (``DecodeOptions.temperature``) is fitted on the dev set:
the data are decoded once, the logits of the allowed candidates at every decision are recomputed in one
teacher-forced pass per batch of texts (greedy choices do not depend on the temperature, so the answers stay),
and the temperature minimising the entities' log loss on dev is chosen from a grid. ECE is reported before
(temperature 1) and after, on the test data; ``--save`` writes it into the adapter's ``nerre.json``
(``score_temperature``), which ``nerre predict`` then uses.

    python benchmarks/calibration.py --adapter conll2003 --data conll2003/test.txt
    python benchmarks/calibration.py --adapter conll2003 --data conll2003/test.txt --dev conll2003/dev.txt --dev-limit 1000 --save

Writes ``benchmarks/results/calibration-<name>.json`` and ``calibration-<name>.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from pr_curve import AS_TRAINED, RESULTS, ROOT, gold_examples

sys.path.insert(0, str(ROOT))

from nerre.atomic import write_text  # noqa: E402

TEMPERATURES = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", required=True, help="adapter folder, or the name of a shipped adapter")
    parser.add_argument("--data", required=True, help="test corpus (relative to $NERRE_DATA_DIR, or a path)")
    parser.add_argument("--dev", help="dev corpus to fit a temperature on")
    parser.add_argument("--format", help="corpus format (detected when omitted)")
    parser.add_argument("--limit", type=int, help="first N documents of each corpus")
    parser.add_argument("--dev-limit", type=int, help="first N documents of the dev corpus (default: --limit)")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--temperatures", type=float, nargs="+", default=TEMPERATURES)
    parser.add_argument("--save", action="store_true", help="write the fitted temperature into the adapter's nerre.json")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--name")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args(argv)


class Decisions:
    """One decode of ``gold``'s texts and the allowed candidates' logits at every decision, to score at any
    temperature without decoding again."""

    def __init__(self, extractor: Any, gold: list):
        import torch
        from tqdm.auto import tqdm

        from nerre.decoding.passes import ModelPasses
        from nerre.example import Example
        from nerre.prompt import prompt_ids

        self.extractor = extractor
        # the windows nerre predict decodes (a text longer than the window is split, then merged back)
        self.documents = [Example(ex.text, tokens=ex.tokens, id=ex.id) for ex in gold]  # the texts, no gold
        windows = [extractor.split(doc) for doc in self.documents]
        self.windows = [len(pieces) for pieces in windows]
        self.sources = [piece for pieces in windows for piece in pieces]
        decoder, formulation, table = extractor.decoder, extractor.formulation, extractor.table
        with tqdm(total=len(self.sources), desc="decoding", unit="text") as bar:
            self.answers = decoder.generate(self.sources, progress=lambda done, _: bar.update(done - bar.n))
        self.ids = decoder.token_ids
        self.logits: list[list[tuple[Any, int]]] = []  # per window, per decision: candidate logits, chosen index
        limits = {k: getattr(extractor.options, k) for k in ("max_nesting", "max_relations", "signatures")}
        passes = ModelPasses(extractor.model)
        prompts = [prompt_ids(extractor.tokenizer, extractor.prompts, source.text) for source in self.sources]
        # the answers as the model chose them (the end token where it chose to end), after each prompt
        taken = [ids + ([table.eos_id] if len(ids) < len(logprobs) else [])
                 for ids, logprobs in zip(self.ids, decoder.token_logprobs)]
        # one teacher-forced pass per batch: packed where that gives the model's own hidden states, after the
        # prompts' common header computed once
        packed = passes.packing_works(extractor.tokenizer) and extractor.batch_size > 1
        width = extractor.batch_size if packed else 1
        shared = min([len(os.path.commonprefix(prompts))] + [len(p) - 1 for p in prompts]) if prompts else 0
        with torch.inference_mode():
            header = passes.prefill(prompts[0][:shared]) if shared > 0 else None
            for first in tqdm(range(0, len(self.sources), width), desc="decision logits", unit="batch"):
                rows = range(first, min(first + width, len(self.sources)))
                caches = [passes.new_cache(header, shared, packed) for _ in rows]
                hidden = passes.run(caches, [(prompts[i] + taken[i])[shared:] for i in rows], packed)
                for i, h in zip(rows, hidden):
                    h = h[len(prompts[i]) - 1 - shared :]
                    allowed = formulation.grammar(self.sources[i], table, **limits).candidates(taken[i])
                    self.logits.append([(passes.candidate_logits(h[k], c), c.index(t))
                                        for k, (c, t) in enumerate(zip(allowed, taken[i]))])

    def predictions(self, temperature: float) -> list:
        """The predictions with their scores at ``temperature``."""
        import torch

        from nerre.decoding.confidence import attach_scores
        from nerre.predict import _merge

        read, defects = self.extractor.formulation.parse(self.sources, self.answers)
        logprobs = [[0.0 if len(lg) == 1 else torch.log_softmax(lg / temperature, 0)[i].item() for lg, i in doc]
                    for doc in self.logits]
        attach_scores(self.extractor.formulation, self.extractor.table, self.sources, self.answers, self.ids,
                      logprobs, read)
        documents, start = [], 0
        for doc, n in zip(self.documents, self.windows):
            parts = [(read[k], defects[k], self.answers[k]) for k in range(start, start + n)]
            documents.append(_merge(doc, parts).example)
            start += n
        return documents


def pairs(gold: list, predictions: list) -> list[tuple[float, bool]]:
    """(score, correct) for every predicted entity with a score."""
    out = []
    for g, p in zip(gold, predictions):
        truth = set(g.entities)
        out += [(p.scores[e], e in truth) for e in p.entities if e in p.scores]
    return out


def reliability(points: list[tuple[float, bool]], bins: int) -> dict[str, Any]:
    """ECE, log loss and the per-bin table."""
    table = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(s, c) for s, c in points if low <= s < high or (b == bins - 1 and s == 1.0)]
        if inside:
            table.append({"low": low, "high": high, "count": len(inside),
                          "mean_score": sum(s for s, _ in inside) / len(inside),
                          "accuracy": sum(c for _, c in inside) / len(inside)})
    n = max(1, len(points))
    ece = sum(row["count"] / n * abs(row["accuracy"] - row["mean_score"]) for row in table)
    eps = 1e-6
    log_loss = -sum(math.log(min(max(s, eps), 1 - eps)) if c else math.log(1 - min(max(s, eps), 1 - eps))
                    for s, c in points) / n
    return {"entities": len(points), "ece": round(ece, 4), "log_loss": round(log_loss, 4),
            "accuracy": round(sum(c for _, c in points) / n, 4), "bins": table}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    for key in ("before", "after"):
        table = result.get(key)
        if table:
            label = "temperature 1" if key == "before" else f"temperature {result['temperature']:g}"
            ax.plot([r["mean_score"] for r in table["bins"]], [r["accuracy"] for r in table["bins"]], "o-",
                    label=f"{label}: ECE {table['ece']:.3f}")
    ax.set_xlabel("mean entity score in bin")
    ax.set_ylabel("fraction of those entities that are correct")
    ax.set_title(f"{result['name']}: reliability")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from nerre.adapter import update_settings
    from nerre.predict import Extractor

    if args.threads:
        torch.set_num_threads(args.threads)
    extractor = Extractor.load(args.adapter, batch_size=args.batch_size, temperature=1.0, **AS_TRAINED)
    test = gold_examples(args.data, args.format, args.limit)
    name = args.name or f"{Path(args.adapter).name}-{Path(args.data).stem}"
    result: dict[str, Any] = {
        "name": name,
        "command": " ".join(["python", "benchmarks/calibration.py", *(argv if argv is not None else sys.argv[1:])]),
        "adapter": str(args.adapter), "data": str(args.data), "documents": len(test), "bins": args.bins,
    }
    test_decisions = Decisions(extractor, test)
    result["before"] = reliability(pairs(test, test_decisions.predictions(1.0)), args.bins)
    if args.dev:
        dev = gold_examples(args.dev, args.format, args.dev_limit or args.limit)
        dev_decisions = Decisions(extractor, dev)
        fits = {t: reliability(pairs(dev, dev_decisions.predictions(t)), args.bins) for t in args.temperatures}
        best = min(fits, key=lambda t: fits[t]["log_loss"])
        result["dev"] = {"documents": len(dev), "log_loss_by_temperature": {str(t): f["log_loss"] for t, f in fits.items()}}
        result["temperature"] = best
        result["after"] = reliability(pairs(test, test_decisions.predictions(best)), args.bins)
        if args.save:
            result["saved"] = str(update_settings(args.adapter, score_temperature=best))
    args.results.mkdir(parents=True, exist_ok=True)
    write_text(args.results / f"calibration-{name}.json", json.dumps(result, indent=1) + "\n")
    plot(result, args.results / f"calibration-{name}.png")
    summary = {k: result[k]["ece"] for k in ("before", "after") if k in result}
    print(f"{name}: ECE {summary}" + (f", temperature {result['temperature']:g}" if "temperature" in result else ""))
    return result


if __name__ == "__main__":
    main()
