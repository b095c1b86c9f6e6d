"""The annotation loop against a real Label Studio server: import nerre's pre-annotations, annotate, export, read back.

What a user does, step by step, through Label Studio's HTTP API (labelstud.io/api):

1. ``nerre predict --to labelstudio --rank uncertainty`` on a BRAT folder of ``.txt`` documents (the
   ``--limit`` first documents of ``--data``, named after their ids);
2. a project from the relation-extraction template with the adapter's labels; the tasks imported;
3. the predictions as Label Studio stored them: one per task, ``model_version`` naming the adapter, the
   document score and a score per result; the Data Manager sorted by prediction score gives nerre's order;
4. half of the tasks annotated from their pre-annotations (one corrected: its first entity removed); one more
   task, written by nerre as an annotation with two relation labels on one span pair, imported;
5. the exports read back with nerre: the default JSON export (prediction-only tasks hold prediction ids),
   an export snapshot with complete predictions, and JSON-MIN; each must give back exactly what was
   annotated or predicted, with nerre's document ids; the snapshot converted to BRAT gives back the file names.

Start a server first (nothing here reaches the internet)::

    pip install label-studio
    LATEST_VERSION_CHECK=false label-studio start --no-browser --port 8080 \\
        --username me@example.com --password secret123

then create a personal access token (Account & Settings > Personal Access Token) and run
``python benchmarks/labelstudio_check.py --token <token>``. A legacy token works where the organization
enables legacy tokens (Label Studio 1.23 disables them for new organizations). Writes
``benchmarks/results/labelstudio/check.json`` and ``check.md``; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT
from pr_curve import DATA_DIR

sys.path.insert(0, str(ROOT))

from nerre.atomic import write_text  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:8080", help="the Label Studio server")
    parser.add_argument("--token", required=True, help="a legacy API token or a personal access token")
    parser.add_argument("--adapter", default="conll04", help="adapter folder, or a shipped adapter's name")
    parser.add_argument("--data", default="conll04/conll04_test.json", help="documents to pre-annotate")
    parser.add_argument("--limit", type=int, default=12, help="documents to pre-annotate")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--output-dir", type=Path, default=RESULTS / "labelstudio")
    return parser.parse_args(argv)


class LabelStudio:
    """A few calls of Label Studio's HTTP API, with a legacy token or a personal access token."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.auth = f"Token {token}"
        try:
            self.call("GET", "/api/current-user/whoami")
            return
        except urllib.error.HTTPError as error:
            if error.code != 401:
                raise
        try:  # a personal access token: a JWT refresh token, exchanged for an access token
            access = self.call("POST", "/api/token/refresh/", {"refresh": token}, auth=False)["access"]
        except urllib.error.HTTPError as error:
            raise SystemExit(f"{self.url} refused the token ({error.code}): give a personal access token (Account & "
                             "Settings > Personal Access Token), or a legacy token where the organization enables "
                             "legacy tokens (Organization > Settings > Access Token Settings)") from None
        self.auth = f"Bearer {access}"

    def call(self, method: str, path: str, body: Any = None, auth: bool = True, raw: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", self.auth)
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = response.read()
        return payload if raw else (json.loads(payload) if payload else None)


def label_config(entity_labels: list[str], relation_labels: list[str]) -> str:
    """Label Studio's relation-extraction template with these labels."""
    relations = "".join(f'<Relation value="{label}"/>' for label in relation_labels)
    labels = "".join(f'<Label value="{label}"/>' for label in entity_labels)
    return (f'<View><Relations>{relations}</Relations><Labels name="label" toName="text">{labels}</Labels>'
            '<Text name="text" value="$text"/></View>')


def content(example: Any) -> tuple:
    """What must survive the loop: id, text, entities, relations."""
    return (example.id, example.text, sorted((e.start, e.end, e.label) for e in example.entities),
            sorted(((r.head.start, r.head.end), (r.tail.start, r.tail.end), r.label) for r in example.relations))


def corrected(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The annotator's correction: the first span removed, with the relations that used it."""
    spans = [item for item in result if item["type"] == "labels"]
    if not spans:
        return result
    gone = spans[0]["id"]
    return [item for item in result if item.get("id") != gone and gone not in (item.get("from_id"), item.get("to_id"))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from nerre.adapter import read_settings, resolve_adapter
    from nerre.example import Entity, Example, Relation
    from nerre.loaders import load_examples
    from nerre.loaders.labelstudio import write_labelstudio
    from nerre.loaders.options import ReadNotes
    from nerre.schema import Schema

    work = Path(tempfile.mkdtemp(prefix="nerre-ls-"))
    documents = load_examples(args.data_dir / args.data)[: args.limit]
    brat = work / "incoming"
    brat.mkdir()
    for k, doc in enumerate(documents):
        (brat / f"doc-{k:03d}.txt").write_text(doc.text, encoding="utf-8")
    pre = work / "preannotated.json"
    command = ["nerre", "predict", "--adapter", args.adapter, "--input", str(brat), "--output", str(pre),
               "--to", "labelstudio", "--rank", "uncertainty"]
    subprocess.run(command, check=True)
    tasks = json.loads(pre.read_text(encoding="utf-8"))
    predicted = {t["data"]["nerre_id"]: t for t in tasks}
    nerre_order = [t["data"]["nerre_id"] for t in tasks]

    ls = LabelStudio(args.url, args.token)
    version = ls.call("GET", "/api/version")
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: Any = "") -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail != "" else ""))

    schema = Schema(**read_settings(resolve_adapter(args.adapter)).schema)  # the project names the adapter's labels
    entity_labels, relation_labels = schema.entity_names, schema.relation_names
    project = ls.call("POST", "/api/projects", {"title": f"nerre check {time.strftime('%H:%M:%S')}",
                                                "label_config": label_config(entity_labels, relation_labels)})
    pid = project["id"]
    imported = ls.call("POST", f"/api/projects/{pid}/import", tasks)
    check("import: every task and prediction accepted",
          imported.get("task_count") == len(tasks) and imported.get("prediction_count") == len(tasks),
          {k: imported.get(k) for k in ("task_count", "prediction_count", "annotation_count")})

    stored = ls.call("GET", f"/api/tasks?project={pid}&page_size=1000&fields=all")
    stored = stored["tasks"] if isinstance(stored, dict) else stored
    by_id = {t["data"]["nerre_id"]: t for t in stored}
    mismatches = []
    for nid, task in by_id.items():
        preds = ls.call("GET", f"/api/predictions?task={task['id']}")
        mine = predicted[nid]["predictions"][0]
        if len(preds) != 1 or preds[0]["model_version"] != mine["model_version"] \
                or abs(preds[0]["score"] - mine["score"]) > 1e-6 or preds[0]["result"] != mine["result"]:
            mismatches.append(nid)
    check("predictions stored as written (model_version, document score, results with their scores)",
          not mismatches, {"model_version": tasks[0]["predictions"][0]["model_version"], "differ": mismatches})

    view = ls.call("POST", "/api/dm/views", {"project": pid, "data": {"ordering": ["tasks:predictions_score"]}})
    ordered = ls.call("GET", f"/api/tasks?view={view['id']}&project={pid}&page_size=1000")
    ordered = ordered["tasks"] if isinstance(ordered, dict) else ordered
    ls_order = [t["data"]["nerre_id"] for t in ordered]
    ls_scores = [predicted[n]["predictions"][0]["score"] for n in ls_order]
    check("Data Manager sorted by prediction score = nerre's --rank uncertainty order (ties aside)",
          ls_scores == sorted(ls_scores) and ls_scores == [predicted[n]["predictions"][0]["score"] for n in nerre_order],
          {"label_studio": ls_order, "nerre": nerre_order})

    # Annotate half of the tasks from their pre-annotations; correct the first one.
    expected: dict[str, Any] = {}
    annotated = nerre_order[: len(nerre_order) // 2]
    for k, nid in enumerate(annotated):
        result = predicted[nid]["predictions"][0]["result"]
        result = corrected(result) if k == 0 else result
        ls.call("POST", f"/api/tasks/{by_id[nid]['id']}/annotations",
                {"result": result, "was_cancelled": False, "ground_truth": False, "lead_time": 1.0})
        expected[nid] = result
    # One task with two relation labels on one span pair, written by nerre as an annotation.
    text = "Ann Lee of Acme Corp. lives in Boston ."
    ann, acme = Entity(0, 7, "Peop"), Entity(11, 20, "Org")
    two = Example(text, [ann, acme], [Relation(ann, acme, "Work_For"), Relation(ann, acme, "Live_In")], id="two-labels")
    write_labelstudio([two], work / "two.json")
    ls.call("POST", f"/api/projects/{pid}/import", json.loads((work / "two.json").read_text(encoding="utf-8")))

    exports = {}
    for name, kind, file in [("JSON (default export)", "JSON", "export.json"), ("JSON-MIN", "JSON_MIN", "export_min.json")]:
        url = f"/api/projects/{pid}/export?exportType={kind}&download_all_tasks=true"
        (work / file).write_bytes(ls.call("GET", url, raw=True))
        exports[name] = work / file
    snapshot = ls.call("POST", f"/api/projects/{pid}/exports", {
        "title": "nerre", "serialization_options": {"predictions": {"only_id": False}}})
    for _ in range(60):
        if ls.call("GET", f"/api/projects/{pid}/exports/{snapshot['id']}").get("status") == "completed":
            break
        time.sleep(1)
    (work / "export_full.json").write_bytes(
        ls.call("GET", f"/api/projects/{pid}/exports/{snapshot['id']}/download?exportType=JSON", raw=True))
    exports["JSON snapshot, complete predictions"] = work / "export_full.json"

    from_predictions = {ex.id: ex for ex in load_examples(pre, format="labelstudio")}
    from_annotations = dict(from_predictions)
    for nid, result in expected.items():
        task = {"data": predicted[nid]["data"], "annotations": [{"result": result}]}
        write_text(work / "one.json", json.dumps([task]))
        from_annotations[nid] = load_examples(work / "one.json", format="labelstudio")[0]
    from_annotations["two-labels"] = two
    readings = {}
    for name, path in exports.items():
        notes = ReadNotes()
        examples = {ex.id: ex for ex in load_examples(path, format="labelstudio", notes=notes)}
        readings[name] = {"examples": len(examples), "notes": notes.lines()}
        full = name.startswith("JSON snapshot")
        wanted = set(expected) | {"two-labels"} | (set(predicted) if full else set())
        wrong = sorted(nid for nid in wanted
                       if nid not in examples or content(examples[nid]) != content(
                           (from_annotations if nid in expected or nid == "two-labels" else from_predictions)[nid])
                       and not (name == "JSON-MIN" and _same_spans(examples.get(nid), from_annotations.get(nid))))
        empty = sorted(nid for nid in set(examples) - wanted if examples[nid].entities)
        check(f"{name}: read back exactly, with nerre's ids" + (" (spans only: JSON-MIN holds no relations)"
                                                               if name == "JSON-MIN" else ""),
              not wrong and not empty and set(examples) == set(predicted) | {"two-labels"},
              {"differ": wrong, "unexpected entities": empty, "notes": notes.lines()})
    two_back = load_examples(exports["JSON (default export)"], format="labelstudio")
    two_back = next(ex for ex in two_back if ex.id == "two-labels")
    check("two relation labels on one span pair survive", sorted(r.label for r in two_back.relations) ==
          ["Live_In", "Work_For"], [r.label for r in two_back.relations])
    back = work / "brat_back"
    subprocess.run(["nerre", "data", "convert", str(exports["JSON snapshot, complete predictions"]), str(back),
                    "--to", "brat"], check=True)
    names = sorted(p.stem for p in back.glob("*.ann"))
    check("BRAT -> Label Studio -> BRAT keeps the document names",
          names == sorted(set(predicted) | {"two-labels"}), names)

    record = {"label_studio": version.get("release") or version.get("label-studio-os-package", {}).get("version")
              or version, "adapter": args.adapter, "data": args.data, "documents": len(documents),
              "command": "python benchmarks/labelstudio_check.py " + " ".join(argv or sys.argv[1:]).replace(
                  args.token, "<token>"),
              "checks": checks, "readings": readings}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_text(args.output_dir / "check.json", json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    lines = [f"# nerre against a real Label Studio server ({record['label_studio']})", "",
             f"`{record['command']}`: {len(documents)} documents of `{args.data}` pre-annotated by `{args.adapter}`.", "",
             "| check | result |", "|---|---|"]
    lines += [f"| {c['check']} | {'pass' if c['ok'] else 'FAIL: ' + json.dumps(c['detail'])} |" for c in checks]
    lines += ["", "What nerre's reader said about each export:", ""]
    lines += [f"- {name}: {r['examples']} tasks; " + ("; ".join(r["notes"]) or "nothing converted")
              for name, r in readings.items()]
    write_text(args.output_dir / "check.md", "\n".join(lines) + "\n")
    return 0 if all(c["ok"] for c in checks) else 1


def _same_spans(got: Any, want: Any) -> bool:
    """JSON-MIN holds spans, no relations: the same id, text and entities."""
    return got is not None and want is not None and content(got)[:3] == content(want)[:3]


if __name__ == "__main__":
    sys.exit(main())
