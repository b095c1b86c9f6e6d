"""JSON records with character offsets, the formulation practitioners also tried.

Target::

    {"entities": [{"entity_type": "person", "entity_value": "John Doe", "start_position": 0,
                   "end_position": 8}], "relations": [{"head": 0, "type": "work for", "tail": 1}]}

Models tend to get the offsets wrong; the parser counts that as ``wrong_offsets`` and moves the
entity to the occurrence of its value nearest to the given offset, or drops it as hallucinated.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from nerre.example import Entity, Example, Relation, entity_order
from nerre.formulation.base import Formulation, ParsedAnswer, Source, source_text

_OBJECT = re.compile(r"\{[^{}\[\]]*\}")


class JsonRecords(Formulation):
    """A JSON object listing entities with character offsets, and relations by entity index."""

    name = "json"

    def encode(self, example: Example) -> str:
        entities = sorted(set(example.entities), key=entity_order)
        index = {e: i for i, e in enumerate(entities)}
        record: dict[str, Any] = {
            "entities": [
                {
                    "entity_type": self.schema.entity(e.label).display,
                    "entity_value": example.span_text(e),
                    "start_position": e.start,
                    "end_position": e.end,
                }
                for e in entities
            ]
        }
        if self.schema.relations:
            record["relations"] = [
                {"head": index[r.head], "type": self.schema.relation(r.label).display, "tail": index[r.tail]}
                for r in example.relations
            ]
        return json.dumps(record, ensure_ascii=False)

    def instruction(self) -> str:
        text = (
            'Answer with one JSON object. Its "entities" list holds one record per entity mention: '
            '{"entity_type": type, "entity_value": the exact text, "start_position": character offset '
            'of its first character, "end_position": offset just after its last character}. '
            "Use only the entity types listed."
        )
        if self.schema.relations:
            text += (
                ' Its "relations" list holds {"head": index, "type": relation type, "tail": index}, '
                "the indices pointing into the entities list. Use only the relation types listed."
            )
        return text

    def parse_answer(self, source: Source, answer: str) -> ParsedAnswer:
        text, result = source_text(source), ParsedAnswer()
        record = _parse(answer, result.defects)
        items = record.get("entities")
        by_index: list[Entity | None] = [
            self._entity(item, text, result.defects) for item in (items if isinstance(items, list) else [])
        ]
        result.entities = sorted({e for e in by_index if e is not None}, key=entity_order)
        if self.schema.relations:
            if not isinstance(record.get("relations"), list):
                result.defects["missing_relations"] += 1
            else:
                for item in record["relations"]:
                    relation = self._relation(item, by_index, result.defects)
                    if relation is not None:
                        result.relations.append(relation)
        return result

    def _entity(self, item: Any, text: str, defects: Counter) -> Entity | None:
        if not isinstance(item, dict):
            defects["invalid_json"] += 1
            return None
        name = item.get("entity_type")
        label = self._entity_by_display.get(name, name if name in self.schema.entity_names else None)
        if label is None:
            defects["unknown_label"] += 1
            return None
        value, start, end = item.get("entity_value"), item.get("start_position"), item.get("end_position")
        if not isinstance(value, str) or not value:
            defects["empty_entity"] += 1
            return None
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end and text[start:end] == value:
            return Entity(start, end, label)
        starts = [m.start() for m in re.finditer(re.escape(value), text)]
        if not starts:
            defects["hallucinated_entity"] += 1
            return None
        defects["wrong_offsets"] += 1
        anchor = start if isinstance(start, int) else 0
        best = min(starts, key=lambda s: abs(s - anchor))
        return Entity(best, best + len(value), label)

    def _relation(self, item: Any, entities: list[Entity | None], defects: Counter) -> Relation | None:
        if not isinstance(item, dict):
            defects["malformed_relation"] += 1
            return None
        name = item.get("type")
        label = self._relation_by_display.get(name, name if name in self.schema.relation_names else None)
        if label is None:
            defects["unknown_relation"] += 1
            return None
        head, tail = item.get("head"), item.get("tail")
        args = []
        for index in (head, tail):
            if not isinstance(index, int) or not 0 <= index < len(entities) or entities[index] is None:
                defects["dangling_argument"] += 1
                return None
            args.append(entities[index])
        return Relation(args[0], args[1], label)


def _parse(output: str, defects: Counter) -> dict[str, Any]:
    """The first JSON object in ``output``; on failure, the complete entity records that can be salvaged."""
    start = output.find("{")
    if start >= 0:
        try:
            record, _ = json.JSONDecoder().raw_decode(output[start:])
            if isinstance(record, dict):
                return record
        except json.JSONDecodeError:
            pass
    defects["invalid_json"] += 1
    salvaged = []
    for m in _OBJECT.finditer(output):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "entity_type" in obj:
            salvaged.append(obj)
    return {"entities": salvaged}
