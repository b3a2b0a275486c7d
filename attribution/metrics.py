"""Per-item metrics read from one teacher-forced forward pass.

- facts: ``answer_logprob`` = sum of ``log p(answer token | prefix)`` over the answer tokens;
  ``first_token_logprob`` = the first answer token's log-prob only.
- passages: ``passage_loglik`` = mean token log-likelihood over every token after the first.

``item_metric(logits, batch)`` picks the one a batch type is attributed with. Everything is
vectorised over the batch: logits at position ``t`` score the token at ``t + 1``.

Example:
    >>> logits = bridge(batch.input_ids, attention_mask=batch.attention_mask)  # doctest: +SKIP
    >>> item_metric(logits, batch)  # [batch]  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from attribution.data import FactBatch, PassageBatch


def _upcast(logits: Tensor) -> Tensor:
    """Log-softmax in at least fp32, even for half-precision models (fp64 stays fp64)."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def token_logprobs(logits: Float[Tensor, "batch pos vocab"],
                   input_ids: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos"]:
    """``out[i, t] = log p(input_ids[i, t] | input_ids[i, :t])``; ``out[:, 0]`` is 0 (no prefix)."""
    logits = _upcast(logits)
    picked = logits[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    scored = picked - logits[:, :-1].logsumexp(-1)
    return torch.nn.functional.pad(scored, (1, 0))


def _masked_sum(values: Float[Tensor, "batch pos"], mask: Bool[Tensor, "batch pos"]) -> Float[Tensor, " batch"]:
    return (values * mask).sum(-1)


def answer_logprob(logits: Float[Tensor, "batch pos vocab"], batch: FactBatch) -> Float[Tensor, " batch"]:
    """``log p(answer | prompt)``: the sum of the answer tokens' log-probs."""
    return _masked_sum(token_logprobs(logits, batch.input_ids), batch.answer_mask)


def first_token_logprob(logits: Float[Tensor, "batch pos vocab"], batch: FactBatch) -> Float[Tensor, " batch"]:
    """``log p(first answer token | prompt)``, read at the last prompt position."""
    rows = torch.arange(len(batch), device=logits.device)
    at_prompt_end = _upcast(logits[rows, batch.prompt_last])
    return at_prompt_end.log_softmax(-1)[rows, batch.answer_ids[:, 0]]


def passage_loglik(logits: Float[Tensor, "batch pos vocab"], batch: PassageBatch) -> Float[Tensor, " batch"]:
    """Mean token log-likelihood of each passage over its scored tokens."""
    mask = batch.score_mask
    return _masked_sum(token_logprobs(logits, batch.input_ids), mask) / mask.sum(-1)


def item_metric(logits: Float[Tensor, "batch pos vocab"], batch: FactBatch | PassageBatch) -> Float[Tensor, " batch"]:
    """The metric a batch is attributed with: answer log-prob for facts, mean log-lik for passages."""
    if isinstance(batch, FactBatch):
        return answer_logprob(logits, batch)
    if isinstance(batch, PassageBatch):
        return passage_loglik(logits, batch)
    raise TypeError(f"expected a FactBatch or PassageBatch, got {type(batch).__name__}")


def metric_name(batch: FactBatch | PassageBatch) -> str:
    """Name recorded in a `Ranking` for the metric ``item_metric`` uses on ``batch``."""
    return "answer_logprob" if isinstance(batch, FactBatch) else "passage_loglik"


def read_positions(batch: FactBatch | PassageBatch) -> Bool[Tensor, "batch pos"]:
    """Where `item_metric` reads logits: one position before each scored token."""
    scored = batch.score_mask
    where = torch.zeros_like(scored)
    where[:, :-1] = scored[:, 1:]
    return where


def item_metric_at(logits: Float[Tensor, "n vocab"], batch: FactBatch | PassageBatch) -> Float[Tensor, " batch"]:
    """`item_metric` from the logits at `read_positions` only (``logits[read_positions(batch)]``)."""
    where = read_positions(batch)
    rows = where.nonzero()[:, 0]
    targets = batch.input_ids[:, 1:][where[:, :-1]]
    picked = _upcast(logits).log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    total = torch.zeros(len(batch), dtype=picked.dtype, device=picked.device).index_add_(0, rows, picked)
    if isinstance(batch, FactBatch):
        return total
    if isinstance(batch, PassageBatch):
        return total / batch.score_mask.sum(-1)
    raise TypeError(f"expected a FactBatch or PassageBatch, got {type(batch).__name__}")
