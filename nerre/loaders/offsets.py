"""Character offsets versus UTF-16 code units: annotation tools written in JavaScript (doccano, Label Studio)
sometimes count an emoji (any character outside the Basic Multilingual Plane) as 2, which moves every span
after it. :func:`choose_units` decides per file which count the spans use."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nerre.loaders.options import ReadNotes


def has_astral(text: str) -> bool:
    """True when ``text`` holds a character that UTF-16 spells with two code units."""
    return any(ord(c) > 0xFFFF for c in text)


class Utf16:
    """Convert between UTF-16 code-unit offsets and character offsets of one text."""

    def __init__(self, text: str):
        self.units = [0]
        for c in text:
            self.units.append(self.units[-1] + (2 if ord(c) > 0xFFFF else 1))

    def to_chars(self, offset: int) -> int | None:
        """The character offset for a UTF-16 offset; None inside a surrogate pair or out of range."""
        i = bisect_left(self.units, offset)
        return i if i < len(self.units) and self.units[i] == offset else None

    def from_chars(self, offset: int) -> int:
        """The UTF-16 offset of a character offset."""
        return self.units[offset]


@dataclass
class SpanSample:
    """One span as a file gives it, for deciding the units: the text, the offsets and the span text if stored."""

    text: str
    start: int
    end: int
    value: str | None = None


def _at_boundary(text: str, i: int) -> bool:
    return i <= 0 or i >= len(text) or not (text[i - 1].isalnum() and text[i].isalnum())


def _fits(sample: SpanSample, start: int | None, end: int | None) -> bool:
    text = sample.text
    if start is None or end is None or not 0 <= start < end <= len(text):
        return False
    if sample.value is not None:
        return " ".join(text[start:end].split()) == " ".join(sample.value.split())
    return (not text[start].isspace() and not text[end - 1].isspace() and _at_boundary(text, start)
            and _at_boundary(text, end))


def choose_units(samples: Iterable[SpanSample], option: str | None, notes: ReadNotes) -> str:
    """``chars`` or ``utf16`` for a file, from the user's ``offsets`` option or, for ``auto``/None, from the
    spans in texts with characters outside the BMP: the units under which more of them fit (their stored
    text matches, or they start and end at word boundaries). The choice is recorded in ``notes``."""
    if option in ("chars", "utf16"):
        notes.say(f"offsets read as {'UTF-16 code units' if option == 'utf16' else 'characters'} (offsets={option})")
        return option
    votes = {"chars": 0, "utf16": 0}
    seen = 0
    converters: dict[str, Utf16] = {}
    for sample in samples:
        if not has_astral(sample.text[: max(sample.start, sample.end) + 1]):
            continue  # both counts agree up to here
        seen += 1
        utf16 = converters.setdefault(sample.text, Utf16(sample.text))
        votes["chars"] += _fits(sample, sample.start, sample.end)
        votes["utf16"] += _fits(sample, utf16.to_chars(sample.start), utf16.to_chars(sample.end))
    if not seen:
        return "chars"
    if votes["utf16"] > votes["chars"]:
        notes.say(f"offsets read as UTF-16 code units (detected: {votes['utf16']} of {seen} spans after an emoji "
                  f"fit that way, {votes['chars']} as characters; set offsets=chars to override)")
        return "utf16"
    how = "detected" if votes["chars"] > votes["utf16"] else "could not tell"
    notes.say(f"offsets read as characters ({how}: {votes['chars']} of {seen} spans after an emoji fit as "
              f"characters, {votes['utf16']} as UTF-16 code units; set offsets=utf16 to override)")
    return "chars"


def char_offsets(text: str, units: str) -> Callable[[int, int], tuple[int | None, int | None]]:
    """A function from ``(start, end)`` in ``units`` to character offsets of ``text`` (None where a UTF-16
    offset splits a character)."""
    if units != "utf16":
        return lambda start, end: (start, end)
    utf16 = Utf16(text)
    return lambda start, end: (utf16.to_chars(start), utf16.to_chars(end))
