"""Which format a path holds, judged by its content: :func:`candidates` lists every format that fits.

Only the start of a file is read (:data:`~nerre.loaders.textfile.HEAD_BYTES`, 1 MiB, and at most the first
200 JSON records), however large the file; "throughout" below means throughout that start.

* a folder: ``hf`` (written by ``save_to_disk``) or ``brat`` (``.txt``/``.ann`` files);
* ``.ann``, or a ``.txt`` with an ``.ann`` beside it: ``brat``; ``.spacy``: ``spacy``;
* JSON (``.json``, ``.jsonl``, or any file starting with ``{`` or ``[``): by the shape of its records:
  ``spert``, ``labelstudio``, ``doccano``, and nerre's own records (``jsonl`` one per line, ``json`` a list);
* any other text: ``conll`` only when its lines look like columns throughout (every line ends in a tag
  such as ``O`` or ``B-PER``, and the columns between token and tag hold annotations such as POS tags, or
  the file has sentences separated by blank lines); otherwise raw ``text``, which only ``nerre predict``
  reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nerre.errors import DataError
from nerre.loaders.records import head_records
from nerre.loaders.textfile import read_head

SHAPES = {
    "spert": "a JSON list of {tokens, entities, relations}",
    "labelstudio": "Label Studio tasks {data, annotations}, or JSON-MIN records (with {start, end, labels} spans, "
    "annotation_id and lead_time)",
    "doccano": "doccano records {text, entities: [{start_offset, end_offset, label}]} or {text, label: [[s, e, L]]}",
    "records": "records {text, entities: [{start, end, label}]} or Presidio's {full_text, spans: [{entity_type, "
    "start_position, end_position}]}",
}
_TAG = re.compile(r"^(O|[BIESLUM]-.*[^\W\d_].*)$")
_HF_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")
_SAMPLE = 200


def candidates(path: Path) -> tuple[list[str], str, list[str]]:
    """The formats ``path`` is (``text`` meaning raw text), what was seen (for errors), and the formats that
    could read it given the right reader options."""
    if path.is_dir():
        found = []
        if any((path / name).is_file() for name in _HF_FILES):
            found.append("hf")
        if any(path.rglob("*.ann")) or any(path.rglob("*.txt")):
            found.append("brat")
        return found, "a folder" + ("" if found else " without .txt/.ann files or a saved Hugging Face dataset"), []
    suffix = path.suffix.lower()
    if suffix == ".ann" or (suffix == ".txt" and path.with_suffix(".ann").is_file()):
        return ["brat"], "a BRAT .ann/.txt pair", []
    if suffix == ".spacy":
        return ["spacy"], "a .spacy file", []
    head = read_head(path)
    text = head[0]
    if suffix in (".json", ".jsonl") or text.lstrip()[:1] in ("{", "["):
        return _json_candidates(path, head)
    fits, reason = looks_like_columns(text)
    return (["conll"] if fits else ["text"]), reason, ["conll"]


def _json_candidates(path: Path, head: tuple[str, bool]) -> tuple[list[str], str, list[str]]:
    records, layout = head_records(path, _SAMPLE, head)
    strong: set[str] = set()
    weak: set[str] = set()
    for record in (r.data for r in records[:_SAMPLE]):
        if isinstance(record, dict):
            strong |= _shapes(record, weak)
    found = strong or weak
    named = sorted("jsonl" if s == "records" and layout == "jsonl" else "json" if s == "records" else s for s in found)
    first = records[0].data
    seen = f"records with keys {sorted(first)}" if isinstance(first, dict) else f"a JSON {type(first).__name__}"
    return named, seen, [layout, "doccano", "labelstudio"]


def _shapes(record: dict[str, Any], weak: set[str]) -> set[str]:
    """The shapes one record has for sure; shapes it merely does not contradict go to ``weak``."""
    out = set()
    if isinstance(record.get("tokens"), list) and "entities" in record and "relations" in record:
        out.add("spert")
    if any(k in record for k in ("annotations", "completions", "predictions")) or isinstance(record.get("data"), dict):
        out.add("labelstudio")
    elif any(isinstance(v, list) and v and all(isinstance(x, dict) and {"start", "end", "labels"} <= set(x) for x in v)
             for v in record.values()):
        out.add("labelstudio")
    elif {"annotation_id", "lead_time"} <= set(record):  # JSON-MIN adds these to every record, spans or not
        out.add("labelstudio")
    entities = record.get("entities")
    first = entities[0] if isinstance(entities, list) and entities else None
    if isinstance(first, dict) and "start_offset" in first:
        out.add("doccano")
    labels = record.get("label", record.get("labels"))
    if isinstance(labels, list) and labels and all(isinstance(x, list) and len(x) == 3 for x in labels):
        out.add("doccano")
    for text_field, spans_field in (("text", "entities"), ("full_text", "spans")):
        spans = record.get(spans_field)
        if isinstance(record.get(text_field), str) and isinstance(spans, list):
            if not spans:
                weak.add("records")
            elif isinstance(spans[0], dict) and ({"start", "end"} <= set(spans[0]) or
                                                 {"start_position", "end_position"} <= set(spans[0])):
                out.add("records")
    return out


def looks_like_columns(text: str) -> tuple[bool, str]:
    """Whether ``text`` is a column file throughout, and why not (naming the first line that is not)."""
    lines = text.split("\n")
    separator = next(("\t" if "\t" in line else None for line in lines if line.strip()), None)
    rows, blocks, in_block = [], 0, False
    for number, line in enumerate(lines, start=1):
        fields = line.rstrip("\r").split(separator) if separator else line.split()
        fields = [f.strip() for f in fields]
        if not line.strip() or fields[0] == "-DOCSTART-":
            in_block = False
            continue
        blocks += not in_block
        in_block = True
        if len(fields) < 2 or not _TAG.match(fields[-1]):
            return False, f"line {number} ({line[:60]!r}) does not end in a tag such as O or B-PER"
        rows.append((number, line, fields))
    if not rows:
        return False, "the file holds no lines"
    widths = {len(fields) for _, _, fields in rows}
    annotated = all(not any(c.islower() for c in f) for _, _, fields in rows for f in fields[1:-1])
    if not annotated and not (len(widths) == 1 and blocks > 1):
        number, line, _ = next(r for r in rows if any(any(c.islower() for c in f) for f in r[2][1:-1]))
        return False, (f"line {number} ({line[:60]!r}) has words between its first and last column, and the lines "
                       "are not sentences separated by blank lines")
    if blocks == 1 and all(fields[-1] == "O" for _, _, fields in rows):
        return False, "every line ends in O and there are no blank lines between sentences"
    return True, "a column file"


def no_format_error(path: Path, seen: str, formats: list[str]) -> DataError:
    """The error for a path that fits no format: what was seen, and the formats to choose from."""
    return DataError(path, f"cannot tell the format ({seen}); choose one with --format: {', '.join(formats)}")
