"""Forward passes over per-input KV caches, alone or packed: the one module that reaches into transformers.

Everything here depends on transformers internals that may change between releases:

* ``DynamicCache.layers[i].keys`` / ``.values`` (copied, cropped and read per input);
* a ``DynamicCache`` subclass handed to the model as its cache (``update``, ``get_seq_length``);
* an attention function registered with ``AttentionInterface`` (its ``_global_mapping``), called
  as transformers' attention functions are (``module.layer_idx``, ``scaling``, ``sliding_window``,
  ``softcap``), and switched on by setting ``config._attn_implementation`` for one call;
* the attention mask passed as a ready mapping per ``config.layer_types``;
* the name of the cache argument of the body's ``forward`` (``cache`` in recent releases,
  ``past_key_values`` before).

:meth:`ModelPasses.packing_works` checks the packed pass against the model's own forward pass
once per model; when they disagree (an architecture or a transformers release it does not fit),
inputs are decoded one at a time and a warning names the transformers version.
``tests/test_decoding.py`` runs the same check and fails loudly when an upgrade breaks it.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from typing import Any

import torch
import transformers
from torch import nn
from transformers import DynamicCache

from nerre.models import cache_argument, causal_lm, transformer_body

log = logging.getLogger(__name__)

PACKED_ATTENTION = "nerre_packed"


class RowCache:
    """The keys and values of one sequence, one tensor pair per layer: ``[1, kv_heads, length, head_dim]``."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]):
        self.keys, self.values = keys, values

    @classmethod
    def from_cache(cls, cache: DynamicCache, length: int) -> RowCache:
        return cls([layer.keys[:, :, :length] for layer in cache.layers],
                   [layer.values[:, :, :length] for layer in cache.layers])

    def __len__(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def crop(self, remove: int) -> None:
        if remove > 0:
            self.keys = [k[:, :, :-remove] for k in self.keys]
            self.values = [v[:, :, :-remove] for v in self.values]


class _Packed(DynamicCache):
    """One packed forward pass: the new tokens of several sequences in a row, each attending only to its own cache.

    Handed to the model both as its cache (``update`` appends each sequence's new keys and values to
    that sequence's :class:`RowCache`) and as its attention mask (read by :func:`_packed_attention`).
    """

    def __init__(self, rows: list[RowCache], segments: list[tuple[int, int]]):
        super().__init__()
        self.rows, self.segments = rows, segments
        self._masks: dict[tuple, torch.Tensor | None] = {}

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        for row, (a, b) in zip(self.rows, self.segments):
            k, v = key_states[:, :, a:b], value_states[:, :, a:b]
            if layer_idx < len(row.keys):
                row.keys[layer_idx] = torch.cat([row.keys[layer_idx], k], dim=2)
                row.values[layer_idx] = torch.cat([row.values[layer_idx], v], dim=2)
            else:
                row.keys.append(k)
                row.values.append(v)
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0

    def mask(self, new: int, total: int, window: int | None, device: torch.device) -> torch.Tensor | None:
        """Which of ``total`` keys each of the ``new`` last queries sees (None: all of them)."""
        key = (new, total, window)
        if key not in self._masks:
            q = torch.arange(total - new, total, device=device)[:, None]
            k = torch.arange(total, device=device)[None, :]
            allowed = k <= q
            if window:
                allowed &= k > q - window
            self._masks[key] = None if bool(allowed.all()) else allowed
        return self._masks[key]


def _packed_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, sliding_window=None,
                      softcap=None, **kwargs):
    """Attention for a :class:`_Packed` pass: each sequence's queries over that sequence's keys only.

    The pack arrives as the attention mask where the model passes masks through (Gemma 3); models that
    build their own mask first (Llama's ``create_causal_mask`` gives None here) read the running pass."""
    pack: _Packed = attention_mask if isinstance(attention_mask, _Packed) else _RUNNING.pack
    outputs = []
    for row, (a, b) in zip(pack.rows, pack.segments):
        q = query[:, :, a:b]
        k, v = row.keys[module.layer_idx], row.values[module.layer_idx]
        if k.shape[1] != q.shape[1]:
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
        mask = pack.mask(b - a, k.shape[2], sliding_window, q.device)
        if softcap is None:
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling)
        else:  # logit softcapping (Gemma 2): the eager formula
            scores = (q @ k.transpose(2, 3)) * (scaling if scaling is not None else q.shape[-1] ** -0.5)
            scores = torch.tanh(scores / softcap) * softcap
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            out = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v
        outputs.append(out)
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


_RUNNING = threading.local()
"""The :class:`_Packed` pass running in this thread (``pack``), for models that do not pass it through."""


def _register_packed_attention() -> None:
    from transformers import AttentionInterface

    if PACKED_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(PACKED_ATTENTION, _packed_attention)


def _fork(cache: DynamicCache, length: int) -> DynamicCache:
    """A cache holding the first ``length`` positions of ``cache``; ``cache`` itself is left untouched
    (cache layers only ever replace their tensors, so the copy can share them)."""
    forked = copy.copy(cache)
    forked.layers = [copy.copy(layer) for layer in cache.layers]
    extra = cache.get_seq_length() - length
    if extra > 0:
        forked.crop(-extra)
    return forked


Cache = Any
"""The KV cache of one input: a :class:`RowCache` when packing, else a transformers ``DynamicCache``."""


class ModelPasses:
    """Forward passes of one causal LM for inputs decoded side by side, and the LM head over candidates.

    Args:
        model: a causal LM (plain or peft-wrapped), in eval mode.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.body = transformer_body(model)
        head = causal_lm(model).get_output_embeddings()
        self._head = head
        self._head_weight = head.weight if type(head) is nn.Linear else None
        self._head_bias = head.bias if type(head) is nn.Linear else None
        self._cache_argument = cache_argument(self.body)
        config = causal_lm(model).config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        #: final-logit softcapping (Gemma 2/3): the probabilities are those of the capped logits
        self._softcap: float | None = getattr(config, "final_logit_softcapping", None)
        self._packing: bool | None = None  # decided on first use
        #: why packed passes are off for this model (None while they work or are unchecked)
        self.packing_problem: str | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _body(self, ids: list[int], cache: DynamicCache, **kwargs: Any) -> torch.Tensor:
        """The last hidden states of ``ids`` fed after ``cache`` (which grows by them): ``[len(ids), hidden]``."""
        kwargs[self._cache_argument] = cache
        out = self.body(input_ids=torch.tensor([ids], device=self.device), use_cache=True, **kwargs)
        return out.last_hidden_state[0]

    # -- caches -----------------------------------------------------------------------------------
    def prefill(self, ids: Sequence[int]) -> DynamicCache:
        """The cache of ``ids`` (a prompt header that several inputs share), computed once."""
        cache = DynamicCache()
        self._body(list(ids), cache)
        return cache

    def new_cache(self, prefix: DynamicCache | None, length: int, packed: bool) -> Cache:
        """A cache for one input holding the first ``length`` positions of ``prefix`` (0: empty)."""
        if packed:
            return RowCache.from_cache(prefix, length) if length else RowCache([], [])
        return _fork(prefix, length) if length else DynamicCache()

    @staticmethod
    def length(cache: Cache) -> int:
        """How many positions ``cache`` holds."""
        return len(cache) if isinstance(cache, RowCache) else cache.get_seq_length()

    @staticmethod
    def crop(cache: Cache, remove: int) -> None:
        """Drop the keys and values of the last ``remove`` positions."""
        if remove > 0:
            cache.crop(remove if isinstance(cache, RowCache) else -remove)

    # -- forward passes -------------------------------------------------------------------------
    def run(self, caches: list[Cache], inputs: list[list[int]], packed: bool) -> list[torch.Tensor]:
        """Feed each input's new token ids after its cache (which grows by them); the last hidden
        states of the new positions, one ``[len(ids), hidden]`` tensor per input."""
        if not packed:
            return [self._body(ids, cache) for cache, ids in zip(caches, inputs)]
        flat, positions, segments = [], [], []
        for cache, ids in zip(caches, inputs):
            start = len(cache)
            segments.append((len(flat), len(flat) + len(ids)))
            flat.extend(ids)
            positions.extend(range(start, start + len(ids)))
        hidden = self._packed_forward(caches, segments, flat, positions)
        return [hidden[a:b] for a, b in segments]

    def _packed_forward(self, caches: list[RowCache], segments: list[tuple[int, int]], ids: list[int],
                        positions: list[int]) -> torch.Tensor:
        pack = _Packed(caches, segments)
        config = self.body.config
        masks = {kind: pack for kind in set(getattr(config, "layer_types", None) or ["full_attention"])}
        masks.setdefault("full_attention", pack)
        before = config._attn_implementation
        config._attn_implementation = PACKED_ATTENTION
        _RUNNING.pack = pack
        try:
            return self._body(ids, pack, attention_mask=masks,
                              position_ids=torch.tensor([positions], device=self.device))
        finally:
            config._attn_implementation = before
            _RUNNING.pack = None

    @torch.inference_mode()
    def packing_works(self, tokenizer: Any) -> bool:
        """Whether a packed pass gives the model's own hidden states (checked once, on two short sequences)."""
        if self._packing is None:
            self._packing = False
            try:
                _register_packed_attention()
                ids = tokenizer("Packed check: one, two; three.", add_special_tokens=False)["input_ids"][:12]
                cuts = (len(ids) // 2, len(ids) // 3)
                caches, want = [], []
                for cut in cuts:
                    cache = DynamicCache()
                    self._body(ids[:cut], cache)
                    caches.append(RowCache.from_cache(cache, cut))
                    want.append(self._body(ids[cut:], cache))
                segments, a = [], 0
                for w in want:
                    segments.append((a, a + len(w)))
                    a += len(w)
                got = self._packed_forward(caches, segments, ids[cuts[0]:] + ids[cuts[1]:],
                                           list(range(cuts[0], len(ids))) + list(range(cuts[1], len(ids))))
                scale = max(float(w.abs().max()) for w in want) + 1e-6
                error = max(float((got[s:e] - w).abs().max()) for (s, e), w in zip(segments, want)) / scale
                self._packing = error <= 1e-3
                if not self._packing:
                    self.packing_problem = f"packed hidden states differ from the model's by {error:.2g} (relative)"
            except Exception as error:  # noqa: BLE001 - any failure means: do not pack
                self.packing_problem = f"{type(error).__name__}: {error}"
            if not self._packing:
                log.warning("packed forward passes do not fit %s under transformers %s (%s); decoding one input "
                            "at a time (slower)", type(self.body).__name__, transformers.__version__,
                            self.packing_problem)
        return self._packing

    # -- the LM head ------------------------------------------------------------------------------
    def _logits(self, hidden: torch.Tensor, candidates: list[int]) -> torch.Tensor:
        """The logits of ``candidates`` at ``hidden`` (only their rows of the LM head where it is a plain Linear)."""
        index = torch.tensor(candidates, device=hidden.device)
        if self._head_weight is not None:
            scores = self._head_weight.index_select(0, index) @ hidden
            if self._head_bias is not None:
                scores = scores + self._head_bias.index_select(0, index)
            return scores
        return self._head(hidden[None])[0].index_select(0, index)  # a wrapped head (e.g. LoRA on lm_head)

    def best(self, hidden: torch.Tensor, candidates: list[int]) -> int:
        """The candidate token with the highest logit at ``hidden`` (ties: the lowest id)."""
        if len(candidates) == 1:
            return candidates[0]
        return candidates[int(torch.argmax(self._logits(hidden, candidates)))]

    def _cap(self, logits: torch.Tensor) -> torch.Tensor:
        """Final-logit softcapping where the model caps its logits (float32)."""
        logits = logits.float()
        return torch.tanh(logits / self._softcap).mul_(self._softcap) if self._softcap else logits

    def candidate_logits(self, hidden: torch.Tensor, candidates: list[int]) -> torch.Tensor:
        """The model's final logits of ``candidates`` at ``hidden`` (float32, softcapped where the model caps them)."""
        return self._cap(self._logits(hidden, candidates))

    def choose(self, hidden: torch.Tensor, candidates: list[int], bias: torch.Tensor | None = None
               ) -> tuple[int, Decision | None]:
        """The constrained greedy choice, and the decision to score later with :meth:`log_probs`.

        Without ``bias`` the choice is :meth:`best`'s (the argmax of the raw logits, ties to the lowest id)
        at the same cost: the logits are kept, not normalised here. ``bias`` (one value per candidate) is
        added to the (softcapped) logits before the argmax. One candidate: no decision (None).
        """
        if len(candidates) == 1:
            return candidates[0], None
        logits = self._logits(hidden, candidates)
        pick = int(torch.argmax(logits if bias is None else self._cap(logits) + bias))
        return candidates[pick], (logits, pick)

    def log_probs(self, decisions: Sequence[Decision | None], temperature: float = 1.0) -> list[float]:
        """The log-probability of each decision's choice under the softmax over its candidates only (the model's
        own, without any bias; logits divided by ``temperature``); 0.0 where there was no decision. All the
        decisions of an answer at once: a few tensor operations, whatever their number."""
        taken = [d for d in decisions if d is not None]
        if not taken:
            return [0.0] * len(decisions)
        lengths = torch.tensor([len(logits) for logits, _ in taken])
        padded = self._cap(torch.nn.utils.rnn.pad_sequence([logits for logits, _ in taken], batch_first=True))
        if temperature != 1.0:
            padded = padded / temperature
        padded = padded.cpu().masked_fill_(torch.arange(padded.shape[1])[None] >= lengths[:, None], float("-inf"))
        picks = torch.tensor([[pick] for _, pick in taken])
        values = iter((padded.gather(1, picks)[:, 0] - torch.logsumexp(padded, 1)).tolist())
        return [0.0 if d is None else next(values) for d in decisions]


Decision = tuple[torch.Tensor, int]
"""One constrained choice among several candidates: their logits (as computed) and the index taken."""
