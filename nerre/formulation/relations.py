"""The relation section that the tagged and bio formulations share: a header, then one triple per line.

::

    Relations:
    John Doe | work for | Acme
    Paris #1 | near | Paris #2

* A triple names an entity by its text (whitespace normalised); when several entities of the answer
  share that text, ``#k`` (1-based, in text order) says which one.
* Relation types use their display names (only those: the label names are not read).
* :func:`parse_relations` is tolerant: it counts malformed, truncated and unknown lines and arguments
  that name no entity (see :data:`nerre.formulation.DEFECTS`) instead of raising.
"""

from __future__ import annotations

import re
from collections import Counter

from nerre.example import Entity, Example, Relation, entity_order
from nerre.schema import Schema

RELATIONS_HEADER = "\nRelations:"
_NUMBERED = re.compile(r"(.*) #(\d+)")


def _surface(text: str) -> str:
    return " ".join(text.split())


def reference_groups(entities: list[Entity], text: str) -> dict[str, list[Entity]]:
    """Entities grouped by their whitespace-normalised text, each group in canonical order."""
    groups: dict[str, list[Entity]] = {}
    for e in sorted(set(entities), key=entity_order):
        groups.setdefault(_surface(text[e.start : e.end]), []).append(e)
    return groups


def references(entities: list[Entity], text: str) -> dict[Entity, str]:
    """How triples name each entity: its text, plus ``#k`` when the text is not unique."""
    refs = {}
    for surface, group in reference_groups(entities, text).items():
        for k, e in enumerate(group, 1):
            refs[e] = surface if len(group) == 1 else f"{surface} #{k}"
    return refs


def relation_section(schema: Schema, example: Example) -> str:
    """``"\\nRelations:"`` and a line per relation of ``example``; empty when ``schema`` has no relation types."""
    if not schema.relations:
        return ""
    refs = references(example.entities, example.text)
    lines = [RELATIONS_HEADER]
    for r in example.relations:
        lines.append(f"\n{refs[r.head]} | {schema.relation(r.label).display} | {refs[r.tail]}")
    return "".join(lines)


def read_relation_section(
    schema: Schema, lines: list[str] | None, entities: list[Entity], text: str, defects: Counter
) -> list[Relation]:
    """The relations of an answer's section (``lines`` after the header; None when the header is absent,
    counted as ``missing_relations`` where the schema has relation types)."""
    if not schema.relations:
        return []
    if lines is None:
        defects["missing_relations"] += 1
        return []
    return parse_relations(schema, lines, entities, text, defects)


def parse_relations(
    schema: Schema, lines: list[str], entities: list[Entity], text: str, defects: Counter
) -> list[Relation]:
    """The relations that the lines after the header state between ``entities`` (spans of ``text``).

    Every line that does not yield a relation is counted in ``defects``; a last line without a
    complete triple counts as ``truncated_relations``.
    """
    by_display = {label.display: label.name for label in schema.relations}
    groups = reference_groups(entities, text)
    relations = []
    content = [(i, line.strip()) for i, line in enumerate(lines) if line.strip()]
    for n, (i, line) in enumerate(content):
        triple = _split_triple(line, set(by_display))
        if triple is None:
            last = n == len(content) - 1 and i == len(lines) - 1
            defects["truncated_relations" if last else "malformed_relation"] += 1
            continue
        head_ref, label_name, tail_ref = triple
        label = by_display.get(label_name)  # display names only: a label name is no relation type
        if label is None:
            defects["unknown_relation"] += 1
            continue
        head, tail = _resolve(head_ref, groups, defects), _resolve(tail_ref, groups, defects)
        if head is not None and tail is not None:
            relations.append(Relation(head, tail, label))
    return relations


def _split_triple(line: str, known: set[str]) -> tuple[str, str, str] | None:
    parts = line.split(" | ")
    if len(parts) < 3:
        return None
    if len(parts) == 3:
        return parts[0].strip(), parts[1].strip(), parts[2].strip()
    for i in range(1, len(parts) - 1):  # argument texts may themselves hold " | "
        if parts[i].strip() in known:
            return " | ".join(parts[:i]).strip(), parts[i].strip(), " | ".join(parts[i + 1 :]).strip()
    return None


def _resolve(ref: str, groups: dict[str, list[Entity]], defects: Counter) -> Entity | None:
    ref = _surface(ref)
    numbered = _NUMBERED.fullmatch(ref)
    if numbered and len(groups.get(numbered.group(1), [])) > 1:
        group, k = groups[numbered.group(1)], int(numbered.group(2))
        if 1 <= k <= len(group):
            return group[k - 1]
        defects["dangling_argument"] += 1
        return None
    group = groups.get(ref)
    if not group:
        defects["dangling_argument"] += 1
        return None
    if len(group) > 1:
        defects["ambiguous_argument"] += 1
    return group[0]
