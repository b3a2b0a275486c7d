"""Verbatim memorisation: how much of a forget passage's true continuation a greedy run reproduces.

Inputs are token ids: the greedy continuation ``generated`` of each prefix and the passage's real
continuation ``reference`` (right-padded, ``reference_mask``). All rates are per item, in [0, 1].

Example (one item; generated ``1 2 3 9 5`` vs reference ``1 2 3 4 5``):
    >>> g, r = torch.tensor([[1, 2, 3, 9, 5]]), torch.tensor([[1, 2, 3, 4, 5]])
    >>> m = torch.ones(1, 5, dtype=torch.bool)
    >>> exact_token_match_rate(g, r, m), longest_common_prefix(g, r, m), rouge_l_f1(g, r, m)
    (array([0.8]), array([3]), array([0.8]))
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


def _lengths(mask: Bool[Tensor, "batch pos"]) -> Int[Tensor, " batch"]:
    """Lengths of a right-padded mask; refuses holes, which would make prefixes meaningless."""
    n = mask.sum(-1)
    prefix = torch.arange(mask.shape[-1], device=mask.device) < n.unsqueeze(-1)
    if not bool((prefix == mask).all()):
        raise ValueError("mask must be right-padded: True for a prefix of each row, then False")
    return n


def aligned_matches(
    generated: Int[Tensor, "batch gen"],
    reference: Int[Tensor, "batch ref"],
    reference_mask: Bool[Tensor, "batch ref"],
    generated_mask: Bool[Tensor, "batch gen"] | None = None,
) -> Bool[Tensor, "batch ref"]:
    """``generated[b, t] == reference[b, t]`` at each real reference position ``t``.

    Positions beyond the generation, or outside ``generated_mask``, count as mismatches.
    """
    _lengths(reference_mask)
    width = reference.shape[1]
    gen = generated[:, :width]
    valid = (
        torch.ones_like(gen, dtype=torch.bool)
        if generated_mask is None
        else generated_mask[:, :width]
    )
    if gen.shape[1] < width:  # generation shorter than the reference: the rest is missing
        pad = width - gen.shape[1]
        gen = torch.nn.functional.pad(gen, (0, pad))
        valid = torch.nn.functional.pad(valid, (0, pad), value=False)
    return (gen == reference) & valid & reference_mask


def exact_token_match_rate(
    generated: Int[Tensor, "batch gen"],
    reference: Int[Tensor, "batch ref"],
    reference_mask: Bool[Tensor, "batch ref"],
    generated_mask: Bool[Tensor, "batch gen"] | None = None,
) -> Float[np.ndarray, " batch"]:
    """Fraction of reference positions where the generation has the same token (position-wise)."""
    matches = aligned_matches(generated, reference, reference_mask, generated_mask)
    return (matches.sum(-1).double() / _lengths(reference_mask).clamp(min=1)).cpu().numpy()


def longest_common_prefix(
    generated: Int[Tensor, "batch gen"],
    reference: Int[Tensor, "batch ref"],
    reference_mask: Bool[Tensor, "batch ref"],
    generated_mask: Bool[Tensor, "batch gen"] | None = None,
) -> Int[np.ndarray, " batch"]:
    """Number of leading tokens the generation reproduces exactly before its first mismatch."""
    matches = aligned_matches(generated, reference, reference_mask, generated_mask)
    # cumprod turns "all matched so far" into 1s that stop at the first miss (or the padding).
    return matches.long().cumprod(-1).sum(-1).cpu().numpy()


def lcs_length(a: Int[np.ndarray, " n"], b: Int[np.ndarray, " m"]) -> int:
    """Length of the longest common subsequence of two token sequences (dynamic programming).

    One numpy row per token of ``a``: with ``cand[j] = max(prev[j], prev[j-1] + [a_i == b_j])``
    the recurrence's left dependency ``row[j] = max(row[j-1], cand[j])`` is a running maximum.
    Example: ``lcs_length(np.array([7, 1, 2]), np.array([1, 2, 3, 4])) == 2``.
    """
    prev = np.zeros(len(b) + 1, dtype=np.int64)
    for token in a:
        cand = prev.copy()
        cand[1:] = np.maximum(prev[1:], prev[:-1] + (b == token))
        prev = np.maximum.accumulate(cand)
    return int(prev[-1])


def rouge_l_f1(
    generated: Int[Tensor, "batch gen"],
    reference: Int[Tensor, "batch ref"],
    reference_mask: Bool[Tensor, "batch ref"],
    generated_mask: Bool[Tensor, "batch gen"] | None = None,
) -> Float[np.ndarray, " batch"]:
    """ROUGE-L F1 over tokens: ``2 P R / (P + R)`` with ``P = LCS/len(gen)``, ``R = LCS/len(ref)``.

    F1 (beta = 1), as Google's ``rouge-score`` reports ``rougeL.fmeasure``; 0 when the LCS is 0.
    """
    ref_len = _lengths(reference_mask).tolist()
    gen_len = (
        [generated.shape[1]] * generated.shape[0]
        if generated_mask is None
        else _lengths(generated_mask).tolist()
    )
    gen_np, ref_np = generated.cpu().numpy(), reference.cpu().numpy()
    scores = np.zeros(len(ref_len), dtype=np.float64)
    for b, (n_gen, n_ref) in enumerate(zip(gen_len, ref_len, strict=True)):
        lcs = lcs_length(gen_np[b, :n_gen], ref_np[b, :n_ref])
        if lcs > 0:
            precision, recall = lcs / n_gen, lcs / n_ref
            scores[b] = 2 * precision * recall / (precision + recall)
    return scores


def extraction_strength(
    generated: Int[Tensor, "batch gen"],
    reference: Int[Tensor, "batch ref"],
    reference_mask: Bool[Tensor, "batch ref"],
    generated_mask: Bool[Tensor, "batch gen"] | None = None,
) -> dict[str, float | int]:
    """Means over the items of every extraction measure, for a report.

    Keys: ``exact_match_rate``, ``lcp_tokens``, ``lcp_fraction`` (LCP / reference length),
    ``rouge_l_f1``, ``n_items``.
    """
    if generated.shape[0] == 0:
        raise ValueError("extraction strength of an empty set of passages is undefined")
    args = (generated, reference, reference_mask, generated_mask)
    lcp = longest_common_prefix(*args)
    ref_len = _lengths(reference_mask).clamp(min=1).cpu().numpy()
    return {
        "exact_match_rate": float(exact_token_match_rate(*args).mean()),
        "lcp_tokens": float(lcp.mean()),
        "lcp_fraction": float((lcp / ref_len).mean()),
        "rouge_l_f1": float(rouge_l_f1(*args).mean()),
        "n_items": int(generated.shape[0]),
    }
