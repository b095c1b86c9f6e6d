"""Turning prompts into generated answers."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.no_grad()
def generate_greedy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
) -> list[str]:
    """Plain greedy ``generate`` over a left-padded batch; returns the answers without the prompts."""
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return tokenizer.batch_decode(out[:, input_ids.shape[1] :], skip_special_tokens=True)


def answer_budget(source_tokens: int, has_relations: bool) -> int:
    """A generous number of new tokens for the answer to a source of ``source_tokens`` tokens."""
    return 2 * source_tokens + 32 + (4 * source_tokens if has_relations else 0)
