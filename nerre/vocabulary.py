"""The vocabulary as bytes: the byte string every token id stands for, for grammars that work on bytes."""

from __future__ import annotations

import bisect
import re
import weakref

from transformers import PreTrainedTokenizerBase

__all__ = ["TokenTable", "token_table"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class TokenTable:
    """The byte string every token id stands for, and lookups the valid-token search needs.

    Handles byte-level BPE (GPT-2 style) and SentencePiece-style tokenizers (``▁`` for spaces,
    ``<0xNN>`` byte-fallback pieces, as Gemma's); for other decoders each token is decoded after
    a fixed anchor token (slower to build, and tokens that are partial UTF-8 are left out).
    Special tokens never stand for text; the end-of-sequence token is handled apart.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.eos_id = tokenizer.eos_token_id
        if self.eos_id is None:
            raise ValueError("constrained decoding needs a tokenizer with an eos token")
        size = len(tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
        special = set(tokenizer.all_special_ids)
        special.update(i for i, t in tokenizer.added_tokens_decoder.items() if getattr(t, "special", False))
        kind = _decoder_kind(tokenizer)
        self.kind = kind
        table: list[bytes | None] = [None] * size
        if kind == "byte_level":
            inverse = {c: b for b, c in _bytes_to_unicode().items()}
            added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
            for i, piece in enumerate(pieces):
                if i in special or piece is None:
                    continue
                if i in added:
                    table[i] = added[i].encode("utf-8")
                elif all(c in inverse for c in piece):
                    table[i] = bytes(inverse[c] for c in piece)
        elif kind == "sentencepiece":
            for i, piece in enumerate(pieces):
                if i in special or piece is None:
                    continue
                m = _BYTE_PIECE.fullmatch(piece)
                table[i] = bytes((int(m.group(1), 16),)) if m else piece.replace("▁", " ").encode("utf-8")
        else:
            anchor = tokenizer("a", add_special_tokens=False)["input_ids"][-1:]
            base = tokenizer.decode(anchor)
            for i in range(size):
                if i in special:
                    continue
                text = tokenizer.decode(anchor + [i])
                if text.startswith(base) and "\ufffd" not in text:
                    table[i] = text[len(base) :].encode("utf-8")
        self.token_bytes = table
        by_bytes: dict[bytes, list[int]] = {}
        for i, b in enumerate(table):
            if b:  # empty strings would never advance the answer
                by_bytes.setdefault(b, []).append(i)
        self.by_bytes = by_bytes
        self.sorted = sorted(by_bytes)
        self.longest = max(map(len, by_bytes), default=1)

    def spell(self, data: bytes) -> list[int] | None:
        """Some tokens (longest match first) whose bytes concatenate to ``data``; None when impossible."""
        ids, at = [], 0
        while at < len(data):
            for size in range(min(self.longest, len(data) - at), 0, -1):
                hit = self.by_bytes.get(data[at : at + size])
                if hit:
                    ids.append(hit[0])
                    at += size
                    break
            else:
                return None
        return ids

    def is_prefix(self, prefix: bytes) -> bool:
        """Whether some token's bytes start with ``prefix``."""
        i = bisect.bisect_left(self.sorted, prefix)
        return i < len(self.sorted) and self.sorted[i].startswith(prefix)


def _decoder_kind(tokenizer: PreTrainedTokenizerBase) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = ""
    if backend is not None and backend.decoder is not None:
        try:
            state = backend.decoder.__getstate__().decode("utf-8", "replace")
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - exotic decoders
            state = repr(backend.decoder)
    if '"ByteLevel"' in state:
        return "byte_level"
    if '"ByteFallback"' in state and "▁" in state and '"Strip"' not in state:
        return "sentencepiece"
    return "generic"


_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_table(tokenizer: PreTrainedTokenizerBase) -> TokenTable:
    """The :class:`TokenTable` of ``tokenizer``, built once per tokenizer (about 2 s for Gemma's 262k tokens)."""
    table = _TABLES.get(tokenizer)
    if table is None or len(table.token_bytes) != len(tokenizer):
        table = _TABLES[tokenizer] = TokenTable(tokenizer)
    return table
