"""The label set of a task: entity and relation types, their display names and descriptions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
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
        head: relation types only: the entity labels (names) allowed as the head argument; empty: any.
        tail: relation types only: the entity labels allowed as the tail argument; empty: any.
            ``head`` and ``tail`` together are the relation's argument *signature*: a pair of arguments
            fits when the head's label is in ``head`` and the tail's in ``tail`` (for a symmetric
            relation, in either orientation).
    """

    name: str
    display: str = ""
    description: str = ""
    symmetric: bool = False
    head: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.display:
            object.__setattr__(self, "display", self.name)
        for side in ("head", "tail"):
            value = getattr(self, side)
            names = (value,) if isinstance(value, str) else tuple(value or ())
            if not all(isinstance(x, str) and x for x in names):
                raise ConfigError(f"label {self.name!r}: {side} lists entity label names, found {value!r}")
            object.__setattr__(self, side, tuple(dict.fromkeys(names)))
        if not self.name or not self.display.strip():
            raise ConfigError(f"label {self.name!r}: a label needs a non-empty name and display name")
        if _FORBIDDEN.search(self.display):
            raise ConfigError(
                f"label {self.name!r}: display name {self.display!r} contains one of < > | # or a newline, which "
                "the tagged output uses as markup; choose another display name (data.schema ... display)"
            )

    @property
    def has_signature(self) -> bool:
        """Whether this relation type restricts its arguments' labels (``head`` or ``tail`` set)."""
        return bool(self.head or self.tail)

    def fits(self, head: str, tail: str) -> bool:
        """Whether arguments labelled ``head`` and ``tail`` fit this relation type's signature (either
        orientation for a symmetric type); always true without a signature."""

        def oriented(h: str, t: str) -> bool:
            return (not self.head or h in self.head) and (not self.tail or t in self.tail)

        return oriented(head, tail) or (self.symmetric and oriented(tail, head))


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
        for label in self.entities:
            if label.has_signature:
                raise ConfigError(f"entity label {label.name!r} has head/tail, which only relation labels take")
        known = set(self.entity_names)
        for label in self.relations:
            unknown = [x for x in label.head + label.tail if x not in known]
            if unknown:
                raise ConfigError(f"relation label {label.name!r}: its signature (head/tail) names entity label(s) "
                                  f"{', '.join(map(repr, sorted(set(unknown))))}, which the schema does not list "
                                  f"({sorted(known)}); use the entity label names")

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

    @property
    def signatures(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """``{relation: (head labels, tail labels)}`` of the relation types that have a signature."""
        return {label.name: (label.head, label.tail) for label in self.relations if label.has_signature}

    def fits(self, relation: str, head: str, tail: str) -> bool:
        """Whether relation type ``relation`` takes arguments labelled ``head`` and ``tail`` (see :class:`Label`)."""
        return self.relation(relation).fits(head, tail)

    def check_signatures(self, examples: Iterable[Example], source: str = "data") -> None:
        """Raise :class:`~nerre.errors.DataError` naming the record when a relation of ``examples`` breaks its
        type's signature."""
        from nerre.errors import DataError

        labels = {label.name: label for label in self.relations if label.has_signature}
        for i, ex in enumerate(examples):
            for r in ex.relations:
                label = labels.get(r.label)
                if label is not None and not label.fits(r.head.label, r.tail.label):
                    raise DataError(
                        source, f"relation {r.label} ({ex.span_text(r.head)!r} {r.head.label} -> "
                        f"{ex.span_text(r.tail)!r} {r.tail.label}) breaks the declared signature of {r.label} "
                        f"(head: {list(label.head) or 'any'}, tail: {list(label.tail) or 'any'}); fix the annotation, "
                        "or widen head/tail in data.schema (or the types file)", record=ex.id or i)

    @staticmethod
    def infer_signatures(examples: Iterable[Example]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """The signature each relation type has in ``examples``: the labels its heads carry and those its
        tails carry, sorted (the product of the two sets, the form a schema declares).

        A relation type that does not occur gets none.
        """
        heads: dict[str, set[str]] = {}
        tails: dict[str, set[str]] = {}
        for ex in examples:
            for r in ex.relations:
                heads.setdefault(r.label, set()).add(r.head.label)
                tails.setdefault(r.label, set()).add(r.tail.label)
        return {name: (tuple(sorted(heads[name])), tuple(sorted(tails[name]))) for name in sorted(heads)}

    def with_signatures(self, signatures: dict[str, tuple[Iterable[str], Iterable[str]]]) -> Schema:
        """A copy whose relation types without a signature take the one ``signatures`` gives them (those
        with one keep it)."""
        relations = []
        for label in self.relations:
            if not label.has_signature and label.name in signatures:
                head, tail = signatures[label.name]
                label = replace(label, head=tuple(head), tail=tuple(tail))
            relations.append(label)
        return Schema(list(self.entities), relations)

    def without_signatures(self) -> Schema:
        """A copy with no signatures: any two entities may be the arguments of any relation type."""
        return Schema(list(self.entities), [replace(label, head=(), tail=()) for label in self.relations])

    def describe_signatures(self) -> list[str]:
        """One line per relation type: ``Work_For: head Peop, tail Org`` (``any`` where unrestricted)."""
        return [f"{label.name}: head {', '.join(label.head) or 'any'}, tail {', '.join(label.tail) or 'any'}"
                + (" (symmetric)" if label.symmetric else "") for label in self.relations]

    def to_dict(self) -> dict[str, list[dict]]:
        """``{"entities": [...], "relations": [...]}``, each label as its fields (``Schema(**d)`` reads it back)."""
        return {"entities": [asdict(x) for x in self.entities], "relations": [asdict(x) for x in self.relations]}

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
        """Read a SpERT ``*_types.json``: the ``verbose`` name becomes the display name.

        Beyond SpERT's keys, a relation entry may carry ``"head"`` and ``"tail"`` (lists of entity label
        names, its signature) and ``"description"``; files without them stay valid.
        """
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
                if key == "entities" and ("head" in v or "tail" in v):
                    raise DataError(path, f"entity {name!r}: head/tail belong to relation types")
                signature = {}
                for side in ("head", "tail"):
                    value = v.get(side) or []
                    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                        raise DataError(path, f"relation {name!r}: {side!r} must be a list of entity label names, "
                                              f"found {value!r}")
                    signature[side] = tuple(value)
                found.append(Label(name, str(v.get("verbose") or name), str(v.get("description", "")),
                                   bool(v.get("symmetric")), **signature))
            return found

        try:
            return cls(labels("entities"), labels("relations"))
        except ConfigError as err:
            raise DataError(path, str(err)) from None


def read_signatures(path: str | Path, format: str | None = None) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Relation signatures from a file: a types file's declared ``head``/``tail`` (a JSON object with
    ``"relations"``), or those a corpus in any format nerre reads shows (:meth:`Schema.infer_signatures`)."""
    from nerre.loaders import load_examples

    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: signature file not found; pass a types file or a training corpus")
    if path.is_file() and path.suffix.lower() == ".json" and format is None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and "relations" in data:
            signatures = Schema.from_types_file(path).signatures
            if not signatures:
                raise ConfigError(f"{path}: this types file declares no signature (no relation has head/tail); "
                                  "add them, or pass the training corpus to infer them from")
            return signatures
    return Schema.infer_signatures(load_examples(path, format))


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
