"""The label set of a task: entity and relation types, their display names and descriptions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nerre.errors import ConfigError, MissingPathError
from nerre.example import Example

_FORBIDDEN = re.compile(r"[<>|\n#]")


@dataclass(frozen=True)
class Label:
    """One entity or relation type.

    Args:
        name: the label as the data spells it (``Peop``).
        display: what the model reads and writes (``person``); defaults to ``name``.
        description: one line for the prompt, saying what the label covers.
        symmetric: for relation types whose direction carries no meaning (SciERC's Compare).
    """

    name: str
    display: str = ""
    description: str = ""
    symmetric: bool = False

    def __post_init__(self) -> None:
        if not self.display:
            object.__setattr__(self, "display", self.name)
        if not self.name or not self.display.strip():
            raise ConfigError(f"label {self.name!r}: a label needs a non-empty name and display name")
        if _FORBIDDEN.search(self.display):
            raise ConfigError(
                f"label {self.name!r}: display name {self.display!r} contains one of < > | # or a newline, which "
                "the tagged output uses as markup; choose another display name (data.schema ... display)"
            )


@dataclass
class Schema:
    """The entity and relation types of a task, in the order the prompt lists them.

    Args:
        entities: entity types.
        relations: relation types (empty for plain NER).
    """

    entities: list[Label] = field(default_factory=list)
    relations: list[Label] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.entities = [_as_label(x) for x in self.entities]
        self.relations = [_as_label(x) for x in self.relations]
        for kind, labels in (("entity", self.entities), ("relation", self.relations)):
            for attr in ("name", "display"):
                seen = [getattr(label, attr) for label in labels]
                dupes = sorted({x for x in seen if seen.count(x) > 1})
                if dupes:
                    raise ConfigError(f"the schema lists {kind} label {attr}(s) {', '.join(map(repr, dupes))} more "
                                      f"than once; each {kind} label needs its own name and display name")

    @property
    def entity_names(self) -> list[str]:
        return [label.name for label in self.entities]

    @property
    def relation_names(self) -> list[str]:
        return [label.name for label in self.relations]

    def entity(self, name: str) -> Label:
        """The entity label called ``name``."""
        return _lookup(self.entities, name, "entity")

    def relation(self, name: str) -> Label:
        """The relation label called ``name``."""
        return _lookup(self.relations, name, "relation")

    @property
    def symmetric_relations(self) -> set[str]:
        return {label.name for label in self.relations if label.symmetric}

    def check(self, examples: Iterable[Example], source: str = "data") -> None:
        """Raise ``ValueError`` when ``examples`` use a label this schema does not define."""
        ents, rels = set(self.entity_names), set(self.relation_names)
        for i, ex in enumerate(examples):
            for e in ex.entities:
                if e.label not in ents:
                    raise ConfigError(
                        f"{source}: example {ex.id or i} has entity label {e.label!r}, which is not in the "
                        f"configured labels {sorted(ents)}; add it to the schema or fix the data"
                    )
            for r in ex.relations:
                if r.label not in rels:
                    raise ConfigError(
                        f"{source}: example {ex.id or i} has relation label {r.label!r}, which is not in the "
                        f"configured relation labels {sorted(rels)}; add it to the schema or fix the data"
                    )

    @classmethod
    def infer(cls, examples: Iterable[Example]) -> Schema:
        """The labels used in ``examples``, sorted by name, without descriptions."""
        ents: set[str] = set()
        rels: set[str] = set()
        for ex in examples:
            ents.update(e.label for e in ex.entities)
            rels.update(r.label for r in ex.relations)
        return cls([Label(x) for x in sorted(ents)], [Label(x) for x in sorted(rels)])

    @classmethod
    def from_types_file(cls, path: str | Path) -> Schema:
        """Read a SpERT ``*_types.json``: the ``verbose`` name becomes the display name."""
        from nerre.errors import DataError
        from nerre.loaders.textfile import json_error, read_text

        path = Path(path)
        if not path.is_file():
            raise MissingPathError(f"{path}: types file not found; check the path")
        try:
            data = json.loads(read_text(path))
        except (ValueError, RecursionError) as err:
            line = err.lineno if isinstance(err, json.JSONDecodeError) else None
            raise DataError(path, f"not valid JSON: {json_error(err)}; fix the file", line=line) from None
        if not isinstance(data, dict) or not all(isinstance(data.get(k, {}), dict) for k in ("entities", "relations")):
            raise DataError(path, 'a types file is a JSON object {"entities": {NAME: {"verbose": ...}}, '
                                  '"relations": {...}}, as SpERT\'s *_types.json')

        def labels(key: str) -> list[Label]:
            found = []
            for name, v in data.get(key, {}).items():
                if not isinstance(v, dict):
                    raise DataError(path, f"{key} {name!r}: expected an object with 'verbose' (and 'description')")
                found.append(Label(name, str(v.get("verbose") or name), str(v.get("description", "")),
                                   bool(v.get("symmetric"))))
            return found

        try:
            return cls(labels("entities"), labels("relations"))
        except ConfigError as err:
            raise DataError(path, str(err)) from None


def _as_label(x: Label | str | dict) -> Label:
    if isinstance(x, Label):
        return x
    if isinstance(x, str):
        return Label(x)
    return Label(**x)


def _lookup(labels: list[Label], name: str, kind: str) -> Label:
    for label in labels:
        if label.name == name:
            return label
    raise KeyError(f"unknown {kind} label {name!r}; known: {[x.name for x in labels]}")
