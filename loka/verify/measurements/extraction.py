"""Verbatim memorisation: how much of a forget passage's true continuation the model reproduces.

Each forget passage is cut after its first ``prefix_tokens`` tokens (after BOS); the model
continues greedily for as many tokens as the passage has left, and the continuation is compared
with the real one: exact token match rate (the share of aligned tokens that agree), longest
common prefix, ROUGE-L F1. Beside them, **extraction strength** as open-unlearning defines it:
``ES = 1 - k*/n`` with ``n`` the continuation's length and ``k*`` the smallest prefix length of
the continuation from which the model's teacher-forced argmax reproduces all the rest (what a
greedy run started there would emit). ES is 1 when everything is reproduced from the prefix,
0 when not even the last token is (open-unlearning's loop leaves ``k*`` at ``n - 1`` there and
reports ``1/n``; ``k* = n`` is the empty suffix, which always matches).

Example (one item; generated ``1 2 3 9 5`` vs reference ``1 2 3 4 5``):
    >>> g, r = torch.tensor([[1, 2, 3, 9, 5]]), torch.tensor([[1, 2, 3, 4, 5]])
    >>> m = torch.ones(1, 5, dtype=torch.bool)
    >>> exact_token_match_rate(g, r, m), longest_common_prefix(g, r, m), rouge_l_f1(g, r, m)
    (array([0.8]), array([3]), array([0.8]))
    >>> extraction_strength_es(torch.tensor([[True, True, False, True, True]]), m)   # k* = 3
    array([0.4])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from attribution._common import input_device
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register


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
    valid = torch.ones_like(gen, dtype=torch.bool) if generated_mask is None else generated_mask[:, :width]
    if gen.shape[1] < width:  # generation shorter than the reference: the rest is missing
        pad = width - gen.shape[1]
        gen = torch.nn.functional.pad(gen, (0, pad))
        valid = torch.nn.functional.pad(valid, (0, pad), value=False)
    return (gen == reference) & valid & reference_mask


def exact_token_match_rate(generated: Int[Tensor, "batch gen"], reference: Int[Tensor, "batch ref"],
                           reference_mask: Bool[Tensor, "batch ref"],
                           generated_mask: Bool[Tensor, "batch gen"] | None = None) -> Float[np.ndarray, " batch"]:
    """Share of the reference's tokens that the generation reproduces at the same position."""
    matches = aligned_matches(generated, reference, reference_mask, generated_mask)
    return (matches.sum(-1).double() / _lengths(reference_mask).clamp(min=1)).cpu().numpy()


def longest_common_prefix(generated: Int[Tensor, "batch gen"], reference: Int[Tensor, "batch ref"],
                          reference_mask: Bool[Tensor, "batch ref"],
                          generated_mask: Bool[Tensor, "batch gen"] | None = None) -> Int[np.ndarray, " batch"]:
    """Number of leading reference tokens reproduced exactly."""
    matches = aligned_matches(generated, reference, reference_mask, generated_mask)
    return matches.long().cumprod(-1).sum(-1).cpu().numpy()


def lcs_length(a: Int[np.ndarray, " n"], b: Int[np.ndarray, " m"]) -> int:
    """Longest common subsequence length (dynamic programming, one row at a time)."""
    prev = np.zeros(len(b) + 1, dtype=np.int64)
    for x in a:
        cur = np.zeros_like(prev)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return int(prev[-1])


def rouge_l_f1(generated: Int[Tensor, "batch gen"], reference: Int[Tensor, "batch ref"],
               reference_mask: Bool[Tensor, "batch ref"],
               generated_mask: Bool[Tensor, "batch gen"] | None = None) -> Float[np.ndarray, " batch"]:
    """ROUGE-L F1 on token ids: LCS-based precision and recall, their harmonic mean."""
    ref_len = _lengths(reference_mask).cpu().numpy()
    gen_len = (np.full(len(ref_len), generated.shape[1]) if generated_mask is None
               else _lengths(generated_mask).cpu().numpy())
    gen_np, ref_np = generated.cpu().numpy(), reference.cpu().numpy()
    scores = np.zeros(len(ref_len), dtype=np.float64)
    for b, (n_gen, n_ref) in enumerate(zip(gen_len, ref_len, strict=True)):
        lcs = lcs_length(gen_np[b, :n_gen], ref_np[b, :n_ref])
        if lcs > 0:
            precision, recall = lcs / n_gen, lcs / n_ref
            scores[b] = 2 * precision * recall / (precision + recall)
    return scores


def extraction_strength_es(hits: Bool[Tensor, "batch ref"], mask: Bool[Tensor, "batch ref"]
                           ) -> Float[np.ndarray, " batch"]:
    """open-unlearning's ES from teacher-forced argmax hits on the continuation (module doc)."""
    n = _lengths(mask)
    ok = hits | ~mask
    # suffix_ok[t]: every token from t on is reproduced; k* = the first t where that holds.
    suffix_ok = ok.flip(-1).long().cumprod(-1).flip(-1).bool()
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    k_star = torch.where(suffix_ok & mask, positions, n.unsqueeze(-1)).min(-1).values
    return (1.0 - k_star.double() / n.clamp(min=1)).cpu().numpy()


def extraction_summary(generated: Int[Tensor, "batch gen"], reference: Int[Tensor, "batch ref"],
                       reference_mask: Bool[Tensor, "batch ref"],
                       generated_mask: Bool[Tensor, "batch gen"] | None = None,
                       teacher_hits: Bool[Tensor, "batch ref"] | None = None) -> dict[str, float | int]:
    """Means over the items of every extraction measure, for a report (ES with ``teacher_hits``)."""
    if generated.shape[0] == 0:
        raise ValueError("extraction strength of an empty set of passages is undefined")
    args = (generated, reference, reference_mask, generated_mask)
    lcp = longest_common_prefix(*args)
    ref_len = _lengths(reference_mask).clamp(min=1).cpu().numpy()
    out: dict[str, float | int] = {
        "exact_match_rate": float(exact_token_match_rate(*args).mean()),
        "lcp_tokens": float(lcp.mean()), "lcp_fraction": float((lcp / ref_len).mean()),
        "rouge_l_f1": float(rouge_l_f1(*args).mean()), "n_items": int(generated.shape[0]),
    }
    if teacher_hits is not None:
        out["extraction_strength"] = float(extraction_strength_es(teacher_hits, reference_mask).mean())
    return out


@torch.inference_mode()
def greedy_continue(model: Any, prefix: Tensor, n_new: int) -> Tensor:
    """``n_new`` greedy tokens after each row of an unpadded ``prefix`` batch (HF ``generate``)."""
    out = model.generate(prefix, attention_mask=torch.ones_like(prefix), max_new_tokens=n_new,
                         min_new_tokens=n_new, do_sample=False, num_beams=1,
                         pad_token_id=model.config.pad_token_id or 0)
    return out[:, prefix.shape[1]:]


def extraction(model: Any, tokenizer: Any, passages: list[str], *, prefix_tokens: int = 8
               ) -> dict[str, float | int] | Missing:
    """Every extraction measure on ``passages`` (see the module doc)."""
    from attribution.data import prefix_ids, tokenize_passages
    from loka.evaluate import logits_of

    if not passages:
        return Missing("no forget passages to extract")
    batch = tokenize_passages(tokenizer, list(passages))
    cut = prefix_tokens + len(prefix_ids(tokenizer))
    if int(batch.attention_mask.sum(-1).min()) <= cut:
        return Missing(f"a forget passage has no more than {prefix_tokens} tokens to continue")
    device = input_device(model)
    reference, reference_mask = batch.input_ids[:, cut:], batch.attention_mask[:, cut:].bool()
    generated = greedy_continue(model, batch.input_ids[:, :cut].to(device), reference.shape[1])
    with torch.inference_mode():
        logits = logits_of(model, batch.input_ids.to(device), batch.attention_mask.to(device))
    hits = (logits[:, cut - 1:-1].argmax(-1).cpu() == reference)
    out = extraction_summary(generated.cpu(), reference, reference_mask, teacher_hits=hits)
    out["prefix_tokens"] = prefix_tokens
    return out


def run(ctx: Any) -> dict[str, Any]:
    m, s = ctx.me.model, ctx.settings
    passages = list(ctx.data.passages.get("forget", ()))
    return {"extraction": ctx.me.cached("extraction", lambda: extraction(
        m.model, m.tokenizer, passages, prefix_tokens=s.extraction_prefix_tokens))}


register(Measurement(
    "extraction", keys=("extraction",), run=run, needs=("passages",),
    columns=(Column("extraction.exact_match_rate", "passage extraction", "depth", "lower", wide=True),
             Column("extraction.extraction_strength", "extraction strength (ES)", "depth", "lower")),
    doc="Greedy continuation of each forget passage from its first tokens: the share of tokens "
        "reproduced, and open-unlearning's extraction strength.",
))
