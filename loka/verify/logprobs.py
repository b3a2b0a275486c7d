"""Per-token log-probabilities of the tokens a batch actually contains, and what follows from them.

Batches are right-padded. ``mask[b, t]`` says whether token ``t`` of row ``b`` is *scored* (e.g.
the answer tokens of a fact, or every real token of a passage); it is predicted from the logits
at ``t - 1``, so ``mask[:, 0]`` is never used.

Example (vocabulary of 2, uniform logits, both real tokens scored):
    >>> ids, mask = torch.tensor([[0, 1]]), torch.tensor([[True, True]])
    >>> tl = scored_logprobs(torch.zeros(1, 2, 2), ids, mask)
    >>> tl.logprobs                      # log p(x_1 | x_0) = log 0.5
    tensor([[-0.6931]])
    >>> mean_nll(tl)                     # -log 0.5
    array([0.69314718])
    >>> perplexity(tl)                   # exp(log 2), up to float32 rounding
    2.0000000038093084
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from loka.verify.missing import Missing, finite_or_missing


@dataclass(frozen=True)
class TokenLogprobs:
    """``logprobs[b, t] = log p(x_{t+1} | x_{<=t})`` in row ``b``; ``mask``: scored targets."""

    logprobs: Float[Tensor, "batch target"]
    mask: Bool[Tensor, "batch target"]

    def masked(self) -> Float[Tensor, "batch target"]:
        """Log-probs with unscored positions set to 0: padding (even NaN) never leaks into sums."""
        return torch.where(self.mask, self.logprobs, torch.zeros_like(self.logprobs))

    def counts(self) -> Int[Tensor, " batch"]:
        """Number of scored tokens per row (see `scored_counts`)."""
        return scored_counts(self.mask)


def scored_counts(mask: Bool[Tensor, "batch target"]) -> Int[Tensor, " batch"]:
    """Number of scored tokens per row; raises if a row has none (a caller's masking bug)."""
    n = mask.sum(-1)
    if bool((n == 0).any()):
        empty = torch.nonzero(n == 0).flatten().tolist()
        raise ValueError(f"rows {empty} have no scored tokens; check the mask")
    return n


def scored_logprobs(
    logits: Float[Tensor, "batch pos vocab"],
    input_ids: Int[Tensor, "batch pos"],
    mask: Bool[Tensor, "batch pos"],
) -> TokenLogprobs:
    """Shift by one and gather: the model's log-probability of each next token.

    Returns ``TokenLogprobs`` with ``logprobs`` of shape ``[batch pos-1]`` — float32 whatever the
    logits' dtype (half precision is upcast, float64 cast down), on the logits' device — and
    ``mask[:, 1:]``.
    """
    # Upcast: bf16/fp16 log-softmax loses the small differences MIA scores live on.
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return TokenLogprobs(logprobs=picked, mask=mask[:, 1:])


def mean_logprob(tl: TokenLogprobs) -> Float[np.ndarray, " batch"]:
    """Per-row mean of the scored tokens' log-probs, ``log P(answer)^(1/len)``, as float64."""
    return (tl.masked().double().sum(-1) / tl.counts()).cpu().numpy()


def mean_nll(tl: TokenLogprobs) -> Float[np.ndarray, " batch"]:
    """Per-row mean negative log-likelihood of the scored tokens (the LOSS statistic)."""
    return -mean_logprob(tl)


def perplexity(tl: TokenLogprobs) -> float | Missing:
    """``exp`` of the token-weighted mean NLL over every scored token of the batch.

    Token-weighted (not the mean of per-row perplexities) so long texts count for what they hold.
    """
    n_tokens = int(tl.counts().sum())
    nll = -float(tl.masked().double().sum()) / n_tokens
    if math.isfinite(nll) and nll > math.log(np.finfo(np.float64).max):
        return Missing(f"perplexity overflows float64 (mean NLL {nll:.1f})")
    return finite_or_missing(math.exp(nll) if math.isfinite(nll) else nll, "mean NLL")


def logits_at_rows(
    logits: Float[Tensor, "batch pos vocab"], positions: Int[Tensor, " batch"]
) -> Float[Tensor, "batch vocab"]:
    """The logits of row ``b`` at position ``positions[b]`` (e.g. each prompt's last token).

    Example: ``logits_at_rows(logits, prompt_lengths - 1)`` on a right-padded batch of prompts.
    """
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, positions]
