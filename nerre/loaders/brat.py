"""BRAT standoff: a ``.txt`` with the document and an ``.ann`` beside it (brat.nlplab.org/standoff.html).

What an ``.ann`` holds, and what nerre makes of it (everything not read is counted in the summary line):

* ``T1<TAB>Label 0 5<TAB>text``: an entity. A discontinuous one (``0 5;10 15``, fragments in any order)
  becomes the span from its first to its last character. The ``.txt`` is the truth: stored text that
  differs from it is counted, and the offsets are kept. The same span and label twice is one entity.
* ``R1<TAB>Type Arg1:T1 Arg2:T2``: a relation from Arg1 to Arg2. One whose argument names an id absent
  from the file is skipped and counted.
* ``E1<TAB>Type:T7 Role:T1 Role2:E2``: an event. Each argument becomes a relation from the trigger entity
  (T7) to the argument, labelled by the role without its trailing digits (``Theme2`` -> ``Theme``); an
  argument that is an event stands for that event's trigger.
* ``#`` notes: ``#1<TAB>AnnotatorNotes T1<TAB>score=0.93`` (what :func:`write_brat` writes for a predicted
  entity or relation with a score, and what brat shows when the pointer is on the annotation) gives that
  annotation's score (:attr:`Example.scores <nerre.example.Example.scores>`); other notes are counted and ignored.
* ``A``/``M`` attributes, ``N`` normalisations and ``*`` equivalences have no place in an
  :class:`~nerre.example.Example`: they are counted and ignored, as are lines of an unknown kind.

A folder is read whole (sub-folders too, in path order); a ``.txt`` without ``.ann`` is a document without
annotations (what ``nerre predict`` reads). Each document's id is its path without suffix, relative to the
folder, and :func:`write_brat` writes an example with id ``a/b`` to ``a/b.txt`` and ``a/b.ann``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from nerre.errors import DataError
from nerre.example import Entity, Example, Relation
from nerre.loaders.options import ReadNotes
from nerre.loaders.textfile import read_text

_IGNORED = {"A": "attributes (A) ignored", "M": "attributes (M) ignored", "N": "normalisations (N) ignored",
            "#": "notes (#) ignored", "*": "equivalences (*) ignored"}
_ARG = re.compile(r"^(\S+):(\S+)$")
_SCORE_NOTE = re.compile(r"^AnnotatorNotes ([TR]\S+)\tscore=([0-9.eE+-]+)$")
"""A note of :func:`write_brat`: the score of entity or relation ``T``/``R``."""


def read_brat(path: str | Path, notes: ReadNotes | None = None) -> list[Example]:
    """Read a folder of ``.txt``/``.ann`` pairs, or one pair (given as its ``.ann`` or its ``.txt``).

    Raises:
        DataError: naming ``file:line`` for a missing ``.txt``, an ill-formed line, or offsets beyond the text.
    """
    path = Path(path)
    notes = ReadNotes() if notes is None else notes
    pairs = _pairs(path)
    examples = []
    for rid, txt, ann in pairs:
        if not txt.is_file():
            raise DataError(ann, f"no {txt.name} beside it; every .ann needs the .txt it annotates")
        text = read_text(txt)
        if ann is None or not ann.is_file():
            notes.add(".txt files without .ann read without annotations", txt.name)
            examples.append(Example(text, id=rid))
            continue
        examples.append(_document(rid, text, ann, notes))
    return examples


def _pairs(path: Path) -> list[tuple[str, Path, Path | None]]:
    """``(id, .txt, .ann or None)`` for every document under ``path``."""
    if path.is_dir():
        stems = sorted({p.with_suffix("") for p in [*path.rglob("*.ann"), *path.rglob("*.txt")] if p.is_file()})
        if not stems:
            raise DataError(path, "the folder holds no .txt or .ann files; BRAT data is .txt files with .ann beside")
        return [(s.relative_to(path).as_posix(), s.with_suffix(".txt"), s.with_suffix(".ann")) for s in stems]
    if not path.exists():
        raise DataError(path, "does not exist; check the path")
    stem = path.with_suffix("")
    return [(stem.name, stem.with_suffix(".txt"), stem.with_suffix(".ann"))]


def _document(rid: str, text: str, ann: Path, notes: ReadNotes) -> Example:
    entities: dict[str, Entity] = {}
    seen: set[Entity] = set()
    triggers: dict[str, tuple[str, list[tuple[str, str]], int]] = {}  # E id -> (trigger T id, args, line)
    relations: list[tuple[str, str, str, int, str]] = []  # (label, head id, tail id, line, line id)
    noted: dict[str, float] = {}  # T or R id -> score, from nerre's notes
    for number, line in enumerate(read_text(ann).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        where = f"{ann.name}:{number}"
        rid_, tab, rest = line.partition("\t")
        kind = rid_[:1]
        if not tab:
            raise DataError(ann, f"no tab after the id {rid_!r}; BRAT lines are ID<TAB>ANNOTATION", line=number)
        if kind == "T":
            entity = _entity(ann, number, text, rest, notes, where)
            if entity is not None:
                if entity in seen:
                    notes.add("duplicate entities (same span and label) merged", where)
                entities[rid_] = entity
                seen.add(entity)
        elif kind == "R":
            label, *args = rest.split("\t")[0].split()
            parsed = [_parse_arg(ann, number, a) for a in args]
            if len(parsed) != 2:
                raise DataError(ann, f"a relation needs two arguments (Type Arg1:T1 Arg2:T2), found {rest!r}", number)
            roles = dict(parsed)
            head, tail = (roles["Arg1"], roles["Arg2"]) if {"Arg1", "Arg2"} <= set(roles) else (parsed[0][1], parsed[1][1])
            relations.append((label, head, tail, number, rid_))
        elif kind == "E":
            fields = rest.split("\t")[0].split()
            if not fields:
                raise DataError(ann, "an event needs Type:TRIGGER (and Role:ID arguments)", line=number)
            parsed = [_parse_arg(ann, number, f) for f in fields]
            triggers[rid_] = (parsed[0][1], parsed[1:], number)
        elif kind == "#" and (score := _SCORE_NOTE.match(rest)) and _is_number(score.group(2)):
            noted[score.group(1)] = float(score.group(2))
        elif kind in _IGNORED:
            notes.add(_IGNORED[kind], where)
        else:
            notes.add("lines of an unknown kind ignored (BRAT lines start with T, R, E, A, M, N, # or *)", where)

    def resolve(ref: str) -> Entity | None:  # an event stands for its trigger
        if ref in triggers:
            ref = triggers[ref][0]
        return entities.get(ref)

    for eid, (trigger, args, number) in triggers.items():
        notes.add("events (E) read as relations from the trigger to each argument, labelled by role",
                  f"{ann.name}:{number}")
        for role, ref in args:
            relations.append((re.sub(r"\d+$", "", role) or role, trigger, ref, number, eid))
    kept = []
    scores: dict[Entity | Relation, float] = {entities[k]: v for k, v in noted.items() if k in entities}
    for label, head, tail, number, line_id in relations:
        ends = resolve(head), resolve(tail)
        if None in ends:
            missing = head if ends[0] is None else tail
            notes.add("relations skipped: an argument names an id absent from the file (or a skipped entity)",
                      f"{ann.name}:{number} {line_id} -> {missing}")
            continue
        kept.append(Relation(ends[0], ends[1], label))
        if line_id in noted:
            scores[kept[-1]] = noted[line_id]
    return Example(text, sorted(seen), kept, id=rid, scores=scores)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_arg(ann: Path, number: int, field: str) -> tuple[str, str]:
    match = _ARG.match(field)
    if not match:
        raise DataError(ann, f"expected ROLE:ID, found {field!r}", line=number)
    return match.group(1), match.group(2)


def _entity(ann: Path, number: int, text: str, rest: str, notes: ReadNotes, where: str) -> Entity | None:
    annotation, _, stored = rest.partition("\t")
    label, _, offsets = annotation.partition(" ")
    fragments = []
    for fragment in offsets.split(";"):
        numbers = fragment.split()
        if len(numbers) != 2 or not all(n.isdigit() for n in numbers):
            raise DataError(ann, f"expected 'Label START END' (fragments joined by ';'), found {annotation!r}", number)
        start, end = int(numbers[0]), int(numbers[1])
        if end > len(text) or start > end:
            raise DataError(ann, f"span {start} {end} is outside the .txt ({len(text)} characters); is this .ann "
                            "for that .txt?", line=number)
        if start < end:
            fragments.append((start, end))
    if not label or not fragments:
        notes.add("entities skipped: an empty span or no label", where)
        return None
    if len(fragments) > 1:
        notes.add("discontinuous entities read as the span from their first to their last character", where)
    covered = " ".join(text[s:e] for s, e in fragments)
    if stored and " ".join(stored.split()) != " ".join(covered.split()):
        notes.add("entities whose stored text differs from the .txt (the offsets were kept)", where)
    return Entity(min(s for s, _ in fragments), max(e for _, e in fragments), label)


# -- writing ------------------------------------------------------------------------------------------
def write_brat(examples: Iterable[Example], path: str | Path) -> ReadNotes:
    """Write one ``.txt`` (the text, byte for byte) and one ``.ann`` per example into the folder ``path``.

    Entities become ``T`` lines (a span across a line break is written as fragments split there, as brat
    does), relations ``R`` lines; spaces in a label become ``_`` (counted). A scored prediction gets an
    annotator note per entity and relation, ``#1<TAB>AnnotatorNotes T1<TAB>score=0.9312``, which brat shows
    with the annotation (the document's score has no place in an ``.ann``). File names come from the example
    ids (``doc{n}`` when an id is missing).
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    notes = ReadNotes()

    def brat_type(label: str) -> str:
        if any(c.isspace() for c in label):
            notes.add("labels holding spaces written with '_' (a BRAT type cannot hold spaces)", label)
            return "_".join(label.split())
        return label

    for n, example in enumerate(examples):
        stem = _file_stem(example.id, n, used)
        (folder / stem).parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.txt").write_bytes(example.text.encode("utf-8"))
        ids = {e: f"T{k}" for k, e in enumerate(example.entities, start=1)}
        lines = [f"{ids[e]}\t{brat_type(e.label)} {_fragments(example.text, e)}" for e in example.entities]
        lines += [f"R{k}\t{brat_type(r.label)} Arg1:{ids[r.head]} Arg2:{ids[r.tail]}"
                  for k, r in enumerate(example.relations, 1)]
        scored = [(ids[e], example.scores[e]) for e in example.entities if e in example.scores]
        scored += [(f"R{k}", example.scores[r]) for k, r in enumerate(example.relations, 1) if r in example.scores]
        lines += [f"#{k}\tAnnotatorNotes {target}\tscore={score:.4f}" for k, (target, score) in enumerate(scored, 1)]
        (folder / f"{stem}.ann").write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    return notes


def _fragments(text: str, entity: Entity) -> str:
    pieces = [(m.start() + entity.start, m.end() + entity.start)
              for m in re.finditer(r"[^\r\n]+", text[entity.start : entity.end])]
    offsets = ";".join(f"{s} {e}" for s, e in pieces)
    return f"{offsets}\t{' '.join(text[s:e] for s, e in pieces)}"


def _file_stem(rid: str | None, n: int, used: set[str]) -> str:
    parts = [re.sub(r"[^\w.-]", "_", p) for p in (rid or f"doc{n}").split("/") if p not in ("", ".", "..")]
    stem = "/".join(parts) or f"doc{n}"
    candidate, k = stem, 2
    while candidate in used:
        candidate, k = f"{stem}-{k}", k + 1
    used.add(candidate)
    return candidate
