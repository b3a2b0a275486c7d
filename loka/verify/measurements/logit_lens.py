"""Logit lens by layer: at which layer is the forget answer still decodable from the residual stream?

For each forget fact, the residual stream after every block at the prompt's last token is put
through the model's own final norm and unembedding (nostalgebraist 2020; Patil et al. 2023's
head-projection attack): the rank of the answer's first token among the vocabulary says how
readable the answer is at that depth. An edit that only suppresses the last layers' output
leaves the answer at rank 1 in middle layers. Per layer: top-1 rate and mean rank, beside the
retrain model's; the headline is the best layer's top-1 rate (the attacker's choice of layer).

Example:
    >>> lens = logit_lens(model, tok, forget_facts)     # doctest: +SKIP
    >>> lens["top1"]                # per layer, e.g. [0.0, 0.12, 0.71, 0.95]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from attribution._common import input_device
from attribution.data import tokenize_facts
from loka.evaluate import block_outputs, final_norm
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register


@torch.inference_mode()
def logit_lens(model: Any, tokenizer: Any, facts: Sequence[Any], batch_size: int = 256) -> dict[str, list[float]]:
    """Per layer: the top-1 rate and mean rank (1 = top) of each answer's first token."""
    batch = tokenize_facts(tokenizer, [f.prompt for f in facts], [f.answer for f in facts])
    norm, head = final_norm(model), model.get_output_embeddings()
    device = input_device(model)
    ranks: list[list[np.ndarray]] = []
    for chunk in batch.chunks(batch_size):
        chunk = chunk.to(device)
        states: list[torch.Tensor] = []
        with block_outputs(model, states):
            model(chunk.input_ids, attention_mask=chunk.attention_mask)
        rows = torch.arange(len(chunk), device=device)
        answer = chunk.answer_ids[:, 0]
        for layer, hidden in enumerate(states):
            logits = head(norm(hidden[rows, chunk.prompt_last])).float()
            rank = (logits > logits.gather(-1, answer[:, None])).sum(-1) + 1
            if len(ranks) <= layer:
                ranks.append([])
            ranks[layer].append(rank.cpu().numpy())
    per_layer = [np.concatenate(r) for r in ranks]
    return {"top1": [float((r == 1).mean()) for r in per_layer],
            "mean_rank": [float(r.mean()) for r in per_layer]}


def lens_of(me: Any) -> dict[str, list[float]] | Missing:
    facts = me.data.fact_set("forget")
    if not facts:
        return Missing("no forget facts")
    return me.cached("logit_lens", lambda: logit_lens(me.model.model, me.model.tokenizer, facts))


def run(ctx: Any) -> dict[str, Any]:
    mine = lens_of(ctx.me)
    if isinstance(mine, Missing):
        return {"logit_lens_accuracy": mine, "logit_lens": mine, "curves": {"logit_lens": mine}}
    theirs = Missing("no retrain model") if ctx.ref is None else lens_of(ctx.ref)
    table = dict(mine) | {"retrain_top1": theirs if isinstance(theirs, Missing) else theirs["top1"]}
    return {"logit_lens_accuracy": max(mine["top1"]), "logit_lens": table,
            "curves": {"logit_lens": table}}


def caveats(entry: dict[str, Any], retrain: dict[str, Any] | None) -> list[str]:
    forget, lens = entry.get("forget_accuracy"), entry.get("logit_lens") or {}
    ref = lens.get("retrain_top1") if isinstance(lens.get("retrain_top1"), list) else None
    top1 = lens.get("top1") or []
    for layer, rate in enumerate(top1):
        base = ref[layer] if ref else 0.0
        if isinstance(forget, float) and forget < 0.3 and rate - base > 0.2 and layer < len(top1) - 1:
            return [f"the answer is still the top token of the logit lens at layer {layer} for "
                    f"{rate:.2f} of forget facts (retrain {base:.2f}): removed only in later layers"]
    return []


register(Measurement(
    "logit_lens", keys=("logit_lens_accuracy", "logit_lens"), run=run, needs=("forget_facts",),
    caveats=caveats,
    columns=(Column("logit_lens_accuracy", "logit lens (best layer)", "attacks", "lower"),),
    doc="The answer's first token read from each layer's residual stream through the final "
        "norm and unembedding: the best layer's top-1 rate on the forget facts.",
))
