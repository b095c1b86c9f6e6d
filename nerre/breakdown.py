"""Why relations and entities are missed or wrong: an error breakdown of predictions against the gold.

Matching is that of :mod:`nerre.metrics` in ``strict`` mode (spans and labels; a symmetric relation type
matches in either direction), with gold and predictions taken as sets per example.

Relations:

* every gold relation that is not predicted is *missed*: with both argument entities right (both predicted
  exactly, span and label), split by what was written for that pair instead (the reverse, another label, or
  nothing), or with an argument entity wrong;
* *recall given correct entities*: of the gold relations whose two arguments are both predicted exactly,
  the share that is found: what the relation step loses on its own;
* every false positive is exactly one of: a *wrong argument* (an argument is not a gold entity), *reversed*
  (the gold has the same triple the other way round), a *wrong label* (the gold relates the two entities
  under another type), a *wrong pair* (the gold relates the two entities in no way);
* across those, the false positives *against the signature*: arguments whose labels do not fit the relation
  type's signature (given by a types file, inferred from a corpus such as the training data, or else from the
  gold itself).

Entities: every false positive is a *type* error (a gold entity has the same span, another label), a
*boundary* error (it overlaps a gold entity of its label), both (it overlaps gold entities of other labels
only) or *spurious*; every false negative is a type error, a boundary error, both, or *missed* (no predicted
entity overlaps it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from nerre.example import Entity, Example, Relation
from nerre.metrics import pair_examples
from nerre.schema import Schema

Signatures = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]

RELATION_FP = ("wrong_argument", "reversed", "wrong_label", "wrong_pair")
MISSED_RIGHT = ("written_reversed", "written_with_another_label", "not_written")
ENTITY_FP = ("type", "boundary", "boundary_and_type", "spurious")
ENTITY_FN = ("type", "boundary", "boundary_and_type", "missed")


def _span(e: Entity) -> tuple[int, int, str]:
    return (e.start, e.end, e.label)


def _key(r: Relation, symmetric: Collection[str]) -> tuple:
    head, tail = _span(r.head), _span(r.tail)
    if r.label in symmetric and tail < head:
        head, tail = tail, head
    return (r.label, head, tail)


def _fits(signatures: Signatures, symmetric: Collection[str], label: str, head: str, tail: str) -> bool:
    if label not in signatures:
        return True
    heads, tails = signatures[label]

    def oriented(h: str, t: str) -> bool:
        return (not heads or h in heads) and (not tails or t in tails)

    return oriented(head, tail) or (label in symmetric and oriented(tail, head))


def error_breakdown(gold: Sequence[Example], pred: Sequence[Example], symmetric: Collection[str] = (),
                    signatures: Signatures | None = None, signature_source: str | None = None,
                    gold_source: str = "gold", pred_source: str = "predictions") -> dict[str, Any]:
    """The error breakdown of ``pred`` against ``gold`` (see the module docstring), JSON-ready.

    Args:
        gold: the gold examples.
        pred: the predictions, paired with the gold by :func:`nerre.metrics.pair_examples`.
        symmetric: relation types whose argument order does not matter.
        signatures: ``{relation: (head labels, tail labels)}``; None: inferred from ``gold``.
        signature_source: where the signatures come from (said in the result).
        gold_source, pred_source: the two files, for error messages.
    """
    pairs = pair_examples(gold, pred, gold_source, pred_source)
    symmetric = frozenset(symmetric)
    if signatures is None:
        signatures, signature_source = Schema.infer_signatures(gold), "inferred from the gold"
    total: Counter = Counter()
    per_label: dict[str, Counter] = {}
    entities: Counter = Counter()
    for g, p in pairs:
        gold_entities, pred_entities = {_span(e) for e in g.entities}, {_span(e) for e in p.entities}
        _entity_errors(gold_entities, pred_entities, entities)
        gold_rel = {_key(r, symmetric): r for r in g.relations}
        pred_rel = {_key(r, symmetric): r for r in p.relations}
        # the labels and directions each unordered entity pair has on each side
        gold_pairs: dict[frozenset, set[tuple]] = {}
        for label, head, tail in gold_rel:
            gold_pairs.setdefault(frozenset((head, tail)), set()).add((label, head, tail))
        pred_pairs: dict[frozenset, set[tuple]] = {}
        for label, head, tail in pred_rel:
            pred_pairs.setdefault(frozenset((head, tail)), set()).add((label, head, tail))
        for key in gold_rel:
            label, head, tail = key
            counts = per_label.setdefault(label, Counter())
            both_right = head in pred_entities and tail in pred_entities
            found = key in pred_rel
            for c in (total, counts):
                c["gold"] += 1
                c["gold_with_both_entities_right"] += both_right
                c["found_with_both_entities_right"] += both_right and found
                if found:
                    c["correct"] += 1
                elif not both_right:
                    c["missed_an_entity_wrong"] += 1
            if found or not both_right:
                continue
            written = pred_pairs.get(frozenset((head, tail)), set())
            if any(w[0] == label for w in written):  # only the other direction can be there
                why = "written_reversed"
            elif written:
                why = "written_with_another_label"
            else:
                why = "not_written"
            total[f"missed_{why}"] += 1
            counts[f"missed_{why}"] += 1
        for key, relation in pred_rel.items():
            label, head, tail = key
            counts = per_label.setdefault(label, Counter())
            against = not _fits(signatures, symmetric, label, relation.head.label, relation.tail.label)
            for c in (total, counts):
                c["predicted"] += 1
                c["predicted_against_signature"] += against
            if key in gold_rel:
                continue
            if head not in gold_entities or tail not in gold_entities:
                why = "wrong_argument"
            else:
                related = gold_pairs.get(frozenset((head, tail)), set())
                if (label, tail, head) in related:
                    why = "reversed"
                elif related:
                    why = "wrong_label"
                else:
                    why = "wrong_pair"
            for c in (total, counts):
                c["false_positives"] += 1
                c[f"fp_{why}"] += 1
                c["fp_against_signature"] += against
    return {
        "relations": _relation_summary(total) | {
            "per_label": {label: _relation_summary(per_label[label]) for label in sorted(per_label)},
            "signatures": {"source": signature_source,
                           "signatures": {k: {"head": list(h), "tail": list(t)} for k, (h, t) in signatures.items()}},
            "symmetric": sorted(symmetric),
        },
        "entities": {
            "gold": entities["gold"], "predicted": entities["predicted"], "correct": entities["correct"],
            "false_positives": {"total": entities["predicted"] - entities["correct"]}
            | {k: entities[f"fp_{k}"] for k in ENTITY_FP},
            "false_negatives": {"total": entities["gold"] - entities["correct"]}
            | {k: entities[f"fn_{k}"] for k in ENTITY_FN},
        },
    }


def _relation_summary(c: Counter) -> dict[str, Any]:
    right = c["gold_with_both_entities_right"]
    return {
        "gold": c["gold"], "predicted": c["predicted"], "correct": c["correct"],
        "missed": {
            "total": c["gold"] - c["correct"],
            "both_entities_right": {"total": right - c["found_with_both_entities_right"]}
            | {k: c[f"missed_{k}"] for k in MISSED_RIGHT},
            "an_entity_wrong": c["missed_an_entity_wrong"],
        },
        "recall_given_correct_entities": {
            "gold_with_both_entities_right": right, "found": c["found_with_both_entities_right"],
            "recall": round(c["found_with_both_entities_right"] / right, 4) if right else 0.0,
        },
        "false_positives": {"total": c["false_positives"]} | {k: c[f"fp_{k}"] for k in RELATION_FP}
        | {"against_signature": c["fp_against_signature"]},
        "predicted_against_signature": c["predicted_against_signature"],
    }


def _entity_errors(gold: set[tuple[int, int, str]], pred: set[tuple[int, int, str]], out: Counter) -> None:
    out["gold"] += len(gold)
    out["predicted"] += len(pred)
    out["correct"] += len(gold & pred)
    for kind, wrong, other in (("fp", pred - gold, gold), ("fn", gold - pred, pred)):
        for start, end, label in wrong:
            same_span = any(s == start and e == end for s, e, _ in other)
            overlapping = [lab for s, e, lab in other if s < end and start < e]
            if same_span:
                why = "type"
            elif label in overlapping:
                why = "boundary"
            elif overlapping:
                why = "boundary_and_type"
            else:
                why = "spurious" if kind == "fp" else "missed"
            out[f"{kind}_{why}"] += 1


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def breakdown_markdown(result: dict[str, Any], title: str = "Error breakdown") -> str:
    """The breakdown as Markdown tables (what ``nerre evaluate --breakdown`` prints)."""
    rel, ent = result["relations"], result["entities"]
    missed, fp = rel["missed"], rel["false_positives"]
    right = rel["recall_given_correct_entities"]
    lines = [f"# {title}", "", "## Relations (strict)", "",
             f"{rel['gold']} gold, {rel['predicted']} predicted, {rel['correct']} correct.", "",
             "| gold relations | count | share |", "|---|---:|---:|",
             f"| found | {rel['correct']} | {_pct(rel['correct'], rel['gold'])} |",
             f"| missed, an argument entity wrong | {missed['an_entity_wrong']} | "
             f"{_pct(missed['an_entity_wrong'], rel['gold'])} |",
             f"| missed with both entities right | {missed['both_entities_right']['total']} | "
             f"{_pct(missed['both_entities_right']['total'], rel['gold'])} |"]
    for k in MISSED_RIGHT:
        n = missed["both_entities_right"][k]
        lines.append(f"| &nbsp;&nbsp;{k.replace('_', ' ')} | {n} | {_pct(n, rel['gold'])} |")
    lines += ["", f"**Recall given correct entities:** {right['found']} of the {right['gold_with_both_entities_right']}"
                  f" gold relations whose two arguments are both predicted exactly are found "
                  f"({_pct(right['found'], right['gold_with_both_entities_right'])}).", "",
              "| false positives | count | share |", "|---|---:|---:|",
              f"| all | {fp['total']} | |"]
    for k in (*RELATION_FP, "against_signature"):
        label = k.replace("_", " ") + (" (overlaps the others)" if k == "against_signature" else "")
        lines.append(f"| {label} | {fp[k]} | {_pct(fp[k], fp['total'])} |")
    lines += ["", "A wrong argument: an argument is not a gold entity; reversed: the gold holds the triple the other way "
              "round; wrong label: the gold relates the two entities (either way round) under another type; wrong "
              "pair: the gold does not relate them at all. Against signature: the arguments' labels do not fit the "
              "relation type's signature (counted across the four).", "",
              f"Signatures {rel['signatures']['source']}: "
              + "; ".join(f"{k} ({', '.join(v['head']) or 'any'} -> {', '.join(v['tail']) or 'any'})"
                          for k, v in rel["signatures"]["signatures"].items()) + ".", "",
              "| relation type | gold | found | missed, entities right | recall given entities | FP | wrong argument "
              "| reversed | wrong label | wrong pair | against signature |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, s in rel["per_label"].items():
        f, r = s["false_positives"], s["recall_given_correct_entities"]
        lines.append(f"| {label} | {s['gold']} | {s['correct']} | {s['missed']['both_entities_right']['total']} | "
                     f"{r['found']}/{r['gold_with_both_entities_right']} | {f['total']} | {f['wrong_argument']} | "
                     f"{f['reversed']} | {f['wrong_label']} | {f['wrong_pair']} | {f['against_signature']} |")
    lines += ["", "## Entities (span-exact)", "",
              f"{ent['gold']} gold, {ent['predicted']} predicted, {ent['correct']} correct.", "",
              "| error | false positives | false negatives |", "|---|---:|---:|",
              f"| type (same span, other label) | {ent['false_positives']['type']} | {ent['false_negatives']['type']} |",
              f"| boundary (overlaps one of its label) | {ent['false_positives']['boundary']} | "
              f"{ent['false_negatives']['boundary']} |",
              f"| boundary and type | {ent['false_positives']['boundary_and_type']} | "
              f"{ent['false_negatives']['boundary_and_type']} |",
              f"| no overlap (spurious / missed) | {ent['false_positives']['spurious']} | "
              f"{ent['false_negatives']['missed']} |",
              f"| all | {ent['false_positives']['total']} | {ent['false_negatives']['total']} |", ""]
    return "\n".join(lines)


def write_breakdown(result: dict[str, Any], folder: str | Path, title: str = "Error breakdown") -> list[Path]:
    """Write ``breakdown.json`` and ``breakdown.md`` into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "breakdown.json", folder / "breakdown.md"
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(breakdown_markdown(result, title))
    return [json_path, md_path]
