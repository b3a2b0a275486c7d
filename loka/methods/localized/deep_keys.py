"""`loka-deep`'s first stage: reset the keys only the forget data ever trained.

A parameter that only forget data ever trained has a known retrain value: what training leaves
on a parameter it never touches. Here that is the embedding row (input and output) of each token
of a forget subject's name that no retain text the method can see contains ("exclusive keys").
The never-trained tokens are found in the model itself — their input-embedding norms form a
separate low mode (init scale, decayed) — and the exclusive rows are redrawn from that
population's per-dimension mean and spread (seeded): the name reaches the network like a name it
never saw, so no stored value can be looked up, probed or relearned through it.

Example:
    >>> ids, note = key_reset(model, tok, ["Mira Coltan"], forget_texts, retain_texts, "subject", gen)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

KeyScope = Literal["subject", "words", "all"]


def embeddings(model: Any) -> tuple[Tensor, Tensor]:
    return model.get_input_embeddings().weight, model.get_output_embeddings().weight


def untrained_tokens(model: Any) -> Tensor:
    """Bool mask of tokens the model never trained: the low mode of input-embedding row norms
    (2-means on log norms). All False when the norms show no clear low mode."""
    norms = embeddings(model)[0].detach().float().norm(dim=-1).clamp(min=1e-12).log()
    lo, hi = norms.min(), norms.max()
    low = torch.zeros_like(norms, dtype=torch.bool)
    for _ in range(50):
        low = (norms - lo).abs() < (norms - hi).abs()
        if low.all() or not low.any():
            return torch.zeros_like(low)
        lo, hi = norms[low].mean(), norms[~low].mean()
    if int(low.sum()) < 16 or float((lo - hi).exp()) > 0.6:
        return torch.zeros_like(low)
    return low


def never_trained_draw(model: Any, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor] | None:
    """``n`` fresh (input, output) embedding rows distributed like the never-trained tokens'
    (per-dimension mean and spread of that population); None when there is no such population."""
    mask = untrained_tokens(model)
    if int(mask.sum()) < 16:
        return None
    out = []
    for w in embeddings(model):
        pop = w.detach()[mask].float()
        mu, sd = pop.mean(0), pop.std(0)
        out.append((mu + sd * torch.randn(n, pop.shape[1], generator=gen)).to(w.dtype))
    return out[0], out[1]


def exclusive_tokens(tokenizer: Any, forget_subjects: Sequence[str], forget_texts: Sequence[str],
                     retain_texts: Sequence[str], scope: KeyScope = "subject") -> list[int]:
    """Token ids of the forget subjects' names (``subject``: with and without a leading space;
    ``words``: only tokens that spell a whole word of a name) or of any forget text (``all``)
    that no retain text contains."""
    encode = lambda texts: tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []  # noqa: E731
    retain_ids = {t for row in encode(retain_texts) for t in row}
    if scope in ("subject", "words"):
        cand = {t for row in encode([v for s in forget_subjects for v in (s, " " + s)]) for t in row}
        if scope == "words":  # a sub-word piece may be shared by names the method never saw
            words = {w for s in forget_subjects for w in s.split()}
            cand = {t for t in cand if tokenizer.decode([t]).strip() in words}
    else:
        cand = {t for row in encode(forget_texts) for t in row}
    special = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    return sorted(t for t in cand if t not in retain_ids and t not in special)


def key_reset(model: Any, tokenizer: Any, forget_subjects: Sequence[str], forget_texts: Sequence[str],
              retain_texts: Sequence[str], scope: KeyScope, gen: torch.Generator, output: bool = True
              ) -> tuple[list[int], dict[str, Any]]:
    """Redraw the exclusive keys' embedding rows (module doc); the reset ids and a log entry."""
    ids = exclusive_tokens(tokenizer, forget_subjects, forget_texts, retain_texts, scope)
    draw = never_trained_draw(model, len(ids), gen) if ids else None
    if draw is None:
        reason = "no exclusive token" if not ids else "no never-trained population to draw from"
        return [], {"stage": "key_reset", "tokens": len(ids), "applied": False, "reason": reason}
    e_in, e_out = embeddings(model)
    idx = torch.tensor(ids)
    with torch.no_grad():
        e_in[idx] = draw[0]
        if output:
            e_out[idx] = draw[1]
    return ids, {"stage": "key_reset", "tokens": len(ids), "applied": True}
