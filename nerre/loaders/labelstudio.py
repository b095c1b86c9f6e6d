"""Label Studio JSON exports (labelstud.io/guide/export): tasks with ``data`` and ``annotations``.

Read:

* the JSON export, full (``id``, ``data``, ``annotations``, ``predictions``, ``created_at`` ...) or minimal
  (``data`` and ``annotations`` only); per task, the latest annotation that was not cancelled is read;
  a task with none is read from its last prediction, else without entities (each case counted). Label
  Studio's default export writes the predictions of a task as their ids only (``"predictions": [17, 18]``):
  such a task is read without entities and counted, with how to export the predictions in full;
* ``labels`` results (``value.start``/``end``/``text``/``labels``): one entity per label; the same span and
  label in two regions (a real export holds such duplicates) is one entity (counted);
* ``relation`` results (``from_id``, ``to_id``, ``labels``, ``direction``): one relation per label, from
  ``from_id`` to ``to_id`` (``left`` reverses it; ``bi`` is read as ``right`` and counted); between spans
  with several labels, it joins the entities of their first labels (counted);
* the JSON-MIN export (flat records: the task's data, its ``id``, spans under the labels' ``from_name``, and
  ``annotator``, ``annotation_id``, ``created_at``, ``updated_at``, ``lead_time``): it holds no relations. A task
  without an annotation is exported there as its data alone (``annotation_id`` null, no spans): Label Studio
  writes no predictions into JSON-MIN, so such tasks are read without entities (counted).

The id of an example is the ``data.nerre_id`` that :func:`write_labelstudio` wrote, else Label Studio's task
``id``, so that ids survive BRAT -> Label Studio -> BRAT.

Results of other types (choices, textarea ...) and spans over HTML (XPath offsets) are counted and skipped.
Offsets are characters, or UTF-16 code units in some versions: ``offsets`` chooses, ``auto`` decides from
the stored span texts. :func:`write_labelstudio` writes tasks to import, with the spans under
``predictions`` (pre-annotations to correct) or ``annotations``, for a labeling config whose ``Labels`` tag is
named ``label`` and whose ``Text`` tag is ``text`` with ``value="$text"`` (Label Studio's relation-extraction
template). Relations on one span pair are one ``relation`` result with the list of their labels, as Label
Studio's editor keeps them (it holds one relation per ordered pair). Scores (:attr:`Example.scores`) go into
each result's ``score`` (and, for spans, ``value.score``, as Label Studio's NER pre-annotation example puts it),
the document score into the prediction's ``score``, which the Data Manager sorts tasks by.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nerre.example import Entity, Example, Relation
from nerre.loaders.offsets import SpanSample, char_offsets, choose_units
from nerre.loaders.options import ReadNotes
from nerre.loaders.records import Record, is_int, json_type, read_records

TASK_KEYS = ("annotations", "completions", "predictions", "data")
FULL_PREDICTIONS = ("export the predictions in full: an export snapshot with complete predictions "
                    "(Export > Create snapshot > Predictions: complete; API: serialization_options "
                    '{"predictions": {"only_id": false}})')
ID_FIELD = "nerre_id"
"""``data`` field where :func:`write_labelstudio` keeps the example id."""


def read_labelstudio(
    path: str | Path, text_field: str | None = None, offsets: str | None = None, notes: ReadNotes | None = None
) -> list[Example]:
    """Read a Label Studio JSON or JSON-MIN export.

    Raises:
        DataError: naming the task for a missing text, a result without the keys its type needs, or a span
            outside the text.
    """
    path = Path(path)
    notes = ReadNotes() if notes is None else notes
    tasks = []
    for record in read_records(path)[0]:
        task = record.data
        if any(key in task for key in TASK_KEYS):
            if not isinstance(task.get("data"), dict):
                raise record.error(path, "a task needs 'data', an object holding the text")
            text = _text(path, record, task["data"], text_field)
            tasks.append((record, text, *_results(path, record, task, notes)))
        else:
            text = _text(path, record, task, text_field)
            tasks.append((record, text, _min_results(task), None))
            notes.say("JSON-MIN export: it holds no relations (export JSON to keep them)")
            if "annotation_id" in task and task["annotation_id"] is None and not tasks[-1][2]:
                notes.add("JSON-MIN records of tasks without an annotation read without entities (JSON-MIN holds "
                          "only their data, never predictions; export JSON to read predictions)", record.where(path))
    samples = (SpanSample(text, v["start"], v["end"], v.get("text")) for _, text, results, _ in tasks
               for r in results if _is_span(r) for v in [r["value"]])
    units = choose_units(samples, offsets, notes)
    return [_example(path, record, text, results, units, notes, score) for record, text, results, score in tasks]


def _text(path: Path, record: Record, data: dict[str, Any], text_field: str | None) -> str:
    strings = [k for k, v in data.items() if isinstance(v, str) and k not in (ID_FIELD, "annotator", "created_at", "updated_at")]
    field = text_field or ("text" if "text" in data else strings[0] if len(strings) == 1 else None)
    if field is None or not isinstance(data.get(field), str):
        raise record.error(path, f"cannot tell which field holds the text (string fields: {', '.join(strings) or 'none'}); "
                           "set the reader option text_field")
    return data[field]


def _results(path: Path, record: Record, task: dict[str, Any], notes: ReadNotes
             ) -> tuple[list[dict[str, Any]], float | None]:
    """The result list of the annotation to read (or of the prediction, for a task without one), and the
    prediction's score."""
    where = record.where(path)
    annotations = task.get("annotations", task.get("completions")) or []
    kept = [a for a in annotations if isinstance(a, dict) and not (a.get("was_cancelled") or a.get("skipped"))]
    if len(kept) > 1:
        notes.add("tasks with several annotations: the latest was read", where)
        kept.sort(key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
    predictions = task.get("predictions") or []
    full = [p for p in predictions if isinstance(p, dict)]
    if kept:
        chosen = kept[-1]
    elif full:
        notes.add("tasks without an annotation read from their last prediction", where)
        chosen = full[-1]
    elif predictions and all(is_int(p) for p in predictions):
        notes.add(f"tasks without an annotation whose predictions the export holds as ids only read without "
                  f"entities; {FULL_PREDICTIONS}", where)
        return [], None
    elif predictions:
        chosen = predictions[-1]
    else:
        notes.add("tasks without an annotation read without entities", where)
        return [], None
    results = chosen.get("result") if isinstance(chosen, dict) else None
    if not isinstance(results, list):
        what = "an annotation" if kept else "a prediction"
        raise record.error(path, f"{what} needs 'result', a list; found {json_type(chosen)}"
                           f"{'' if isinstance(chosen, dict) else f' {chosen!r}'}")
    return results, None if kept else _score(chosen)


def _score(item: dict[str, Any]) -> float | None:
    """A ``score`` of a result, a value or a prediction, where it is a number."""
    score = item.get("score")
    return float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None


def _min_results(record: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON-MIN spans (lists of ``{start, end, text, labels}`` under a from_name) as ``labels`` results."""
    return [{"type": "labels", "value": value} for values in record.values() if isinstance(values, list)
            for value in values if isinstance(value, dict) and {"start", "end", "labels"} <= set(value)]


def _is_span(result: Any) -> bool:
    value = result.get("value") if isinstance(result, dict) else None
    return (isinstance(value, dict) and str(result.get("type", "")).endswith("labels")
            and is_int(value.get("start")) and is_int(value.get("end")))


def _example(path: Path, record: Record, text: str, results: list, units: str, notes: ReadNotes,
             score: float | None = None) -> Example:
    where = record.where(path)
    regions: dict[Any, list[Entity]] = {}
    scores: dict[Entity | Relation, float] = {}  # pre-annotations written by nerre carry them
    seen: set[Entity] = set()
    convert = char_offsets(text, units)
    for k, result in enumerate(results):
        if not isinstance(result, dict):
            raise record.error(path, f"result {k} must be an object")
        kind = result.get("type")
        if kind == "relation":
            continue
        if not _is_span(result):
            what = "spans over HTML (XPath offsets) skipped" if str(kind).endswith("labels") else \
                f"results of type {kind!r} ignored (only labels and relation are read)"
            notes.add(what, where)
            continue
        value = result["value"]
        start, end = convert(value["start"], value["end"])
        if start is None or end is None or not 0 <= start < end <= len(text):
            raise record.error(path, f"result {k}: span [{value['start']}, {value['end']}) is outside the text "
                               f"({len(text)} characters, offsets read as {units}); check the offsets reader option")
        stored = value.get("text")
        if isinstance(stored, str) and " ".join(stored.split()) != " ".join(text[start:end].split()):
            notes.add("spans whose stored text differs from the task text (the offsets were kept)", where)
        labels = value.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise record.error(path, f"result {k}: value.labels must be a non-empty list of label strings")
        region = regions.setdefault(result.get("id", f"#{k}"), [])
        for label in labels:
            entity = Entity(start, end, label)
            if entity in seen and entity not in region:
                notes.add("duplicate spans (same offsets and label in two regions) merged into one entity", where)
            seen.add(entity)
            region.append(entity)
            found = _score(result) if _score(result) is not None else _score(value)
            if found is not None:
                scores[entity] = found
    relations = []
    for result in results:
        if result.get("type") != "relation":
            continue
        if "from_id" not in result or "to_id" not in result:
            raise record.error(path, "a relation result needs from_id and to_id")
        heads, tails = regions.get(result["from_id"]), regions.get(result["to_id"])
        labels = result.get("labels") or []
        if not heads or not tails:
            notes.add("relations skipped: from_id or to_id names no span of the task", where)
            continue
        if not labels:
            notes.add("relations without a label skipped", where)
            continue
        if len(heads) > 1 or len(tails) > 1:
            notes.add("relations on a span with several labels read as between the spans' first labels", where)
        head, tail = heads[0], tails[0]
        if result.get("direction") == "left":
            head, tail = tail, head
        elif result.get("direction") == "bi":
            notes.add("bidirectional relations read from from_id to to_id", where)
        relations += [Relation(head, tail, label) for label in labels]
        if _score(result) is not None:
            scores.update((r, _score(result)) for r in relations[-len(labels):])
    entities = sorted({e for group in regions.values() for e in group})
    data = record.data.get("data") if isinstance(record.data.get("data"), dict) else record.data
    rid = data.get(ID_FIELD) if data.get(ID_FIELD) is not None else record.data.get("id")  # nerre's id wins
    return Example(text, entities, relations, id=str(rid) if rid is not None else where, scores=scores, score=score)


def write_labelstudio(
    examples: Iterable[Example], path: str | Path, predictions: bool = False, model_version: str = "nerre"
) -> ReadNotes:
    """Write a JSON list of Label Studio tasks: ``data.text``, the example id in ``data.nerre_id``, and one
    ``predictions`` entry (``predictions=True``: pre-annotations to correct, under ``model_version``) or one
    ``annotations`` entry.

    Relations on the same ordered span pair become one ``relation`` result listing their labels (a label
    repeated on a pair is written once, counted). Where the examples carry scores (:attr:`Example.scores`,
    :attr:`Example.score`), each result gets its ``score`` (spans also in ``value.score``; a relation result
    the lowest score of its labels) and each prediction the document's score.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = ReadNotes()
    tasks = []
    for example in examples:
        scores = example.scores
        ids = {e: f"e{k}" for k, e in enumerate(example.entities)}
        result: list[dict[str, Any]] = []
        for e in example.entities:
            value: dict[str, Any] = {"start": e.start, "end": e.end, "text": example.span_text(e), "labels": [e.label]}
            item: dict[str, Any] = {"id": ids[e], "from_name": "label", "to_name": "text", "type": "labels",
                                    "value": value}
            if e in scores:
                value["score"] = item["score"] = round(scores[e], 6)
            result.append(item)
        pairs: dict[tuple[Entity, Entity], list[Relation]] = {}
        for r in example.relations:
            group = pairs.setdefault((r.head, r.tail), [])
            if any(other.label == r.label for other in group):
                notes.add("relations repeated on the same span pair written once (a Label Studio relation holds "
                          "each label once)", str(example.id))
                continue
            group.append(r)
        for (head, tail), group in pairs.items():
            item = {"from_id": ids[head], "to_id": ids[tail], "type": "relation", "direction": "right",
                    "labels": [r.label for r in group]}
            known = [scores[r] for r in group if r in scores]
            if known:
                item["score"] = round(min(known), 6)
            result.append(item)
        entry: dict[str, Any] = {"result": result}
        if predictions:
            entry["model_version"] = model_version
            if example.score is not None:
                entry["score"] = round(example.score, 6)
        data = {"text": example.text} | ({ID_FIELD: example.id} if example.id is not None else {})
        tasks.append({"data": data, "predictions" if predictions else "annotations": [entry]})
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return notes
