"""Tag schemes (IOB1, IOB2, BIOES/BILOU/BMES): detect the scheme of a tagged corpus and decode tags into spans.

Shared by the CoNLL column reader and the Hugging Face reader. Spans are ``(first token, end token
exclusive, label)``. Decoding errors are :class:`TagError` (a ``ValueError``) carrying the 0-based token
position, so that readers can point at the file line or record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from nerre.errors import ConfigError

SCHEMES = ("iob1", "iob2", "bioes")
_ALIASES = {"bio": "iob2", "iob": "iob2", "iobes": "bioes", "bilou": "bioes", "bmes": "bioes", "bmeso": "bioes"}
_PREFIXES = frozenset("BIESLUM")
_SPELLINGS = {"L": "E", "U": "S", "M": "I"}  # BILOU's L- and U-, BMES's M- (Chinese corpora) in BIOES's letters

Span = tuple[int, int, str]
log = logging.getLogger(__name__)


class TagError(ValueError):
    """An ill-formed tag, or a tag that breaks the scheme, at token ``position`` (0-based)."""

    def __init__(self, position: int, tag: str, reason: str):
        self.position, self.tag, self.reason = position, tag, reason
        super().__init__(f"token {position} (0-based), tag {tag!r}: {reason}")


def normalize_scheme(scheme: str) -> str:
    """The canonical name of a scheme (``bilou`` -> ``bioes``, ``bio`` -> ``iob2``); ValueError if unknown."""
    name = _ALIASES.get(scheme.lower(), scheme.lower())
    if name not in SCHEMES:
        raise ConfigError(f"unknown tag scheme {scheme!r}; choose one of {', '.join(SCHEMES)} (bilou and bmes "
                          "are read as bioes), or 'auto' to detect")
    return name


def parse_tag(tag: str, position: int = 0) -> tuple[str, str | None]:
    """Split a tag into ``(prefix, type)``: ``"O" -> ("O", None)``, ``"B-PER" -> ("B", "PER")``.

    BILOU and BMES prefixes are mapped to BIOES (``U`` -> ``S``, ``L`` -> ``E``, ``M`` -> ``I``). Raises
    :class:`TagError` when the tag is neither ``O`` nor ``PREFIX-TYPE`` with a prefix among B, I, M, E, S, L, U.
    """
    if tag == "O":
        return "O", None
    prefix, dash, label = tag.partition("-")
    if not dash or prefix not in _PREFIXES or not label.strip():
        raise TagError(
            position,
            tag,
            "a tag must be 'O' or PREFIX-TYPE with PREFIX one of B, I, M, E, S, L, U (e.g. 'B-PER'); "
            "fix the tag, or check that the tag column is the right one",
        )
    return _SPELLINGS.get(prefix, prefix), label


def _try_parse(tag: str) -> tuple[str, str | None] | None:
    try:
        return parse_tag(tag)
    except TagError:
        return None


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of a corpus from all its tag sequences.

    ``bioes`` if any tag is S-/E- (or BILOU's U-/L-, or BMES's M-); else ``iob1`` if some I-X begins an entity (the previous
    tag is O, of another type, or the sentence start); else ``iob2``. Ill-formed tags are left for
    :func:`spans_from_tags` to report.
    """
    iob1 = False
    for tags in tag_sequences:
        previous: str | None = None
        for tag in tags:
            parsed = _try_parse(tag)
            if parsed is None:
                previous = None
                continue
            prefix, label = parsed
            if prefix in ("S", "E") or tag.startswith("M-"):
                return "bioes"
            if prefix == "I" and label != previous:
                iob1 = True
            previous = label
    return "iob1" if iob1 else "iob2"


def announce_scheme(scheme: str, tag_sequences: Sequence[Sequence[str]], where: Callable[[int, int], str]) -> None:
    """Say in one line why a detected scheme is IOB1: the first I- tag that begins an entity.

    ``where(sequence, token)`` names that tag's place (``file:line``, or a dataset row). A corpus that begins
    entities with B- (as IOB2 does) at least as often as with I- is an IOB2 file with stray I- tags: a warning
    says so, and how to be strict instead. One that mostly begins them with I- is IOB1 (CoNLL-2003): said at
    info level.
    """
    if scheme != "iob1":
        return
    found, starts = None, {"B": 0, "I": 0}  # how entities begin: B- (IOB2's way) or I- (IOB1's)
    for i, tags in enumerate(tag_sequences):
        previous: str | None = None
        for k, tag in enumerate(tags):
            parsed = _try_parse(tag)
            label = parsed[1] if parsed else None
            if parsed and parsed[0] in starts and label != previous:
                starts[parsed[0]] += 1
                if parsed[0] == "I" and found is None:
                    found = (i, k, f"{tag} follows {tags[k - 1]}" if k else f"{tag} begins a sentence")
            previous = label
    iob2_like = starts["B"] >= starts["I"]  # in doubt, say it loudly
    if found is None:
        return
    i, k, what = found
    if iob2_like:
        log.warning("%s: %s, which IOB2 does not allow; read as IOB1 (an I- tag may begin an entity, which gives "
                    "the same spans); set scheme 'iob2' to stop at such tags instead", where(i, k), what)
    else:
        log.info("%s: %s, beginning an entity, so the tags are read as IOB1 (as in CoNLL-2003); set scheme to "
                 "override", where(i, k), what)


def spans_from_tags(tags: Sequence[str], scheme: str, dropped: list[TagError] | None = None) -> list[Span]:
    """Decode one sentence's tags into ``(start, end_exclusive, label)`` spans.

    Args:
        tags: one tag per token.
        scheme: ``iob1``, ``iob2`` or ``bioes`` (aliases ``bio``, ``bilou``, ``iobes``, ``bmes``).
        dropped: when given, a sequence the scheme does not allow does not raise: the entity it breaks is
            left out (its tags read as ``O``) and the error is appended here, one per entity left out.
            Ill-formed tags raise all the same.

    Raises:
        TagError: (a ``ValueError``) naming the 0-based token position and the tag, for an ill-formed tag
            or a sequence the scheme does not allow.
    """
    scheme = normalize_scheme(scheme)
    if scheme == "bioes":
        return _decode_bioes(tags, dropped)
    spans: list[Span] = []
    start, current = 0, None  # the open entity: first token and type
    for i, tag in enumerate(tags):
        prefix, label = parse_tag(tag, i)
        if prefix in ("E", "S"):
            reason = f"{prefix}- tags belong to BIOES/BILOU, not {scheme}; read the data with scheme 'bioes'"
            raise TagError(i, tag, reason)
        if current is not None and (prefix != "I" or label != current):
            spans.append((start, i, current))
            current = None
        if prefix == "B" or (prefix == "I" and current is None):
            if prefix == "I" and scheme == "iob2":
                error = TagError(
                    i,
                    tag,
                    f"I-{label} does not continue a {label} entity, which IOB2 requires; if the data is IOB1 "
                    "(I- starts entities and B- only separates two adjacent entities of one type, as in "
                    "CoNLL-2003), use scheme 'iob1'",
                )
                if dropped is None:
                    raise error
                if not dropped or dropped[-1].position != i - 1 or dropped[-1].tag != tags[i - 1]:
                    dropped.append(error)  # one per run of orphan I- tags
                else:
                    dropped[-1] = TagError(i, tag, error.reason)
                continue
            start, current = i, label
    if current is not None:
        spans.append((start, len(tags), current))
    return spans


def _decode_bioes(tags: Sequence[str], dropped: list[TagError] | None = None) -> list[Span]:
    spans: list[Span] = []
    start, current = 0, None
    orphan = False  # inside a run of I-/E- tags without their B-, being dropped

    def fail(error: TagError) -> None:
        if dropped is None:
            raise error
        dropped.append(error)

    for i, tag in enumerate(tags):
        prefix, label = parse_tag(tag, i)
        if current is not None and not (prefix in ("I", "E") and label == current):
            fail(TagError(
                i,
                tag,
                f"the {current} entity opened by B- at token {start} is not closed by E-{current} (or L-{current}); "
                "fix the tags, or pick the right scheme",
            ))
            current = None
        if current is None and prefix in ("I", "E"):
            if not orphan:
                fail(TagError(i, tag, f"{tag} without a preceding B-{label}; fix the tags, or pick the right scheme"))
            orphan = prefix == "I"
            continue
        orphan = False
        if prefix == "S":
            spans.append((i, i + 1, label))
        elif prefix == "B":
            start, current = i, label
        elif prefix == "E":
            spans.append((start, i + 1, label))
            current = None
    if current is not None:
        fail(TagError(
            len(tags) - 1,
            tags[-1],
            f"the sentence ends inside the {current} entity opened by B- at token {start}; close it with E-{current}",
        ))
    return spans


def iob2_tags(n_tokens: int, spans: Iterable[Span]) -> list[str]:
    """IOB2 tags for ``n_tokens`` tokens from flat spans (the inverse of ``spans_from_tags(tags, "iob2")``).

    Raises ``ValueError`` for a span out of range, empty, or overlapping another span.
    """
    tags = ["O"] * n_tokens
    for start, end, label in sorted(spans):
        if not 0 <= start < end <= n_tokens:
            raise ValueError(f"span ({start}, {end}, {label!r}) is empty or outside 0..{n_tokens}")
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"span ({start}, {end}, {label!r}) overlaps another span; IOB tags need flat spans")
        tags[start] = f"B-{label}"
        tags[start + 1 : end] = [f"I-{label}"] * (end - start - 1)
    return tags
