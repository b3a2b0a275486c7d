"""Fast batched answer accuracy of any causal LM (HF model or TransformerBridge) on fact prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from attribution.data import tokenize_facts


def logits_of(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits from a HF model (``.logits``) or a bridge (a tensor), same call for both."""
    out = model(input_ids, attention_mask=attention_mask)
    return out if isinstance(out, torch.Tensor) else out.logits


@torch.inference_mode()
def first_token_accuracy(model: Any, tokenizer: Any, facts: Sequence[Any], batch_size: int = 256) -> float:
    """Fraction of facts whose first answer token is the argmax at the end of the prompt.

    ``facts`` are objects with ``.prompt`` and ``.answer`` (a world `Fact`) or dicts with those keys.
    """
    if not facts:
        return float("nan")
    prompts = [f["prompt"] if isinstance(f, dict) else f.prompt for f in facts]
    answers = [f["answer"] if isinstance(f, dict) else f.answer for f in facts]
    batch = tokenize_facts(tokenizer, prompts, answers)
    device = next(model.parameters()).device
    hits = 0
    for chunk in batch.chunks(batch_size):
        chunk = chunk.to(device)
        logits = logits_of(model, chunk.input_ids, chunk.attention_mask)
        rows = torch.arange(len(chunk), device=device)
        pred = logits[rows, chunk.prompt_last].argmax(-1)
        hits += int((pred == chunk.answer_ids[:, 0]).sum())
    return hits / len(batch)
