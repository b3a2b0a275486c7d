"""Verbatim extraction: prompt with a forget passage's first tokens, decode greedily, compare.

Each passage is cut after its first ``prefix_tokens`` tokens (after BOS); the model continues
greedily for as many tokens as the passage has left, and the continuation is compared with the
real one (`loka.verify.metrics.extraction_strength`: exact token match rate, longest common
prefix, ROUGE-L F1). Every prefix has the same length, so the batch needs no padding.

Example:
    >>> extraction(model, tok, forget_passages)["exact_match_rate"]      # doctest: +SKIP
    0.97
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from attribution.data import tokenize_passages
from loka.verify.metrics import Missing, extraction_strength


@torch.inference_mode()
def greedy_continue(model: Any, prefix: torch.Tensor, n_new: int) -> torch.Tensor:
    """``n_new`` greedy tokens after each row of an unpadded ``prefix`` batch (HF ``generate``)."""
    out = model.generate(prefix, attention_mask=torch.ones_like(prefix), max_new_tokens=n_new,
                         min_new_tokens=n_new, do_sample=False, num_beams=1,
                         pad_token_id=model.config.pad_token_id or 0)
    return out[:, prefix.shape[1]:]


def extraction(model: Any, tokenizer: Any, passages: Sequence[str], *, prefix_tokens: int = 8
               ) -> dict[str, float | int] | Missing:
    """Means over ``passages`` of the extraction measures (see the module doc)."""
    if not passages:
        return Missing("no forget passages to extract")
    batch = tokenize_passages(tokenizer, list(passages))
    cut = prefix_tokens + (1 if tokenizer.bos_token_id is not None else 0)
    lengths = batch.attention_mask.sum(-1)
    if int(lengths.min()) <= cut:
        return Missing(f"a forget passage has no more than {prefix_tokens} tokens to continue")
    device = next(model.parameters()).device
    reference = batch.input_ids[:, cut:]
    reference_mask = batch.attention_mask[:, cut:].bool()
    generated = greedy_continue(model, batch.input_ids[:, :cut].to(device), reference.shape[1])
    result = extraction_strength(generated.cpu(), reference, reference_mask)
    result["prefix_tokens"] = prefix_tokens
    return result
