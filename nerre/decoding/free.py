"""Unconstrained decoding: plain greedy ``model.generate``, batched (or with prompt-lookup speculation).

Its answers may drift from the input or break the format; the formulation's tolerant parser
counts each defect (:meth:`Formulation.parse <nerre.formulation.Formulation.parse>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from nerre.decoding.options import DecodeOptions, DecodeStats, Progress, answer_budget
from nerre.formulation import Formulation, Source, source_text
from nerre.prompt import PromptBuilder, prompt_ids


class FreeDecoder:
    """Generates answers with greedy ``generate``, longest prompts first, ``batch_size`` at a time.

    Args:
        model: a causal LM (plain or peft-wrapped), in eval mode.
        tokenizer: its tokenizer.
        prompts: builds the prompt of each input.
        formulation: gives the budget (whether answers hold relations).
        options: how to decode (``batch_size``, ``max_new_tokens``, ``prompt_lookup``).
        stats: counters to add to.
    """

    def __init__(self, model: Any, tokenizer: PreTrainedTokenizerBase, prompts: PromptBuilder,
                 formulation: Formulation, options: DecodeOptions, stats: DecodeStats):
        self.model, self.tokenizer, self.prompts, self.formulation = model, tokenizer, prompts, formulation
        self.options, self.stats = options, stats

    def budget(self, text: str) -> int:
        """Most new tokens for the answer to ``text``, eos included."""
        if self.options.max_new_tokens is not None:
            return self.options.max_new_tokens
        source_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        formulation = self.formulation
        return answer_budget(source_tokens, bool(formulation.schema.relations), formulation.answer_scale)

    @torch.inference_mode()
    def generate(self, sources: Sequence[Source], progress: Progress | None = None) -> list[str]:
        """The answers for ``sources``."""
        texts = [source_text(s) for s in sources]
        ids = [prompt_ids(self.tokenizer, self.prompts, t) for t in texts]
        budgets = [self.budget(t) for t in texts]
        lookup = self.options.prompt_lookup
        size = 1 if lookup else max(1, self.options.batch_size)
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        answers: list[str] = [""] * len(texts)
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        device = next(self.model.parameters()).device
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in rows], device=device)
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in rows], device=device)
            kwargs: dict[str, Any] = {"prompt_lookup_num_tokens": lookup} if lookup else {}
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=max(budgets[i] for i in rows),
                do_sample=False, pad_token_id=pad, eos_token_id=eos, **kwargs,
            )
            for row, i in enumerate(rows):
                new = out[row, width:].tolist()[: budgets[i]]
                if eos in new:
                    new = new[: new.index(eos) + 1]
                self.stats.answer_tokens += len(new)
                new = new[:-1] if new and new[-1] == eos else new
                answers[i] = self.tokenizer.decode(new, skip_special_tokens=True)
            self.stats.forward_passes += out.shape[1] - width
            if progress:
                progress(min(start + size, len(order)), len(order))
        return answers
