"""Unlearning depth by activation patching (the UDS idea, 2026): where does the removal live?

The base model (before unlearning) is run on the forget prompts with one block's output at the
subject's tokens replaced by the model under test's, block by block. Where the tested model no
longer carries the fact, the base model loses it too; where the tested model still carries it,
the base model answers as before. The same patching with the retrain model's states gives the
reference: how much a model that never learned the fact takes away at each block.

Per fact and block ``l`` with ``s`` the log-probability of the answer's first token:
``D_X(l) = s_base - s_base<-X(l)``. Blocks where the retrain states matter (``D_R(l) > 0.05``
nats) encode the knowledge; there,
``UDS = sum_l D_R(l) * clip(D_M(l) / D_R(l), 0, 1) / sum_l D_R(l)`` — 1: erased as deeply as
retraining, 0: intact (facts with no such block are left out); the model's score is the mean.
The curve per block is the base model's first-token recall with the tested model's states.

Example (one fact, two blocks; D_R = (2, 1), D_M = (1, 2)):
    >>> uds(np.array([[2.0, 1.0]]), np.array([[1.0, 2.0]]))   # (2 * .5 + 1 * 1) / 3
    0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from attribution._common import input_device
from attribution.data import prefix_ids, tokenize_facts
from loka.evaluate import block_outputs, decoder_layers, logits_of, patched_block
from loka.verify.logprobs import logits_at_rows
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register

TAU = 0.05  # nats: a block "encodes" the fact when the retrain states take at least this away


def uds(delta_retrain: np.ndarray, delta_model: np.ndarray, tau: float = TAU) -> float | Missing:
    """Mean over facts of the retrain-weighted share of knowledge removed (module doc)."""
    scores = []
    for d_r, d_m in zip(delta_retrain, delta_model, strict=True):
        ke = d_r > tau
        if ke.any():
            scores.append(float((d_r[ke] * np.clip(d_m[ke] / d_r[ke], 0.0, 1.0)).sum() / d_r[ke].sum()))
    return float(np.mean(scores)) if scores else Missing("no block encodes the forget facts in the base model")


def subject_positions(tokenizer: Any, facts: Sequence[Any], batch: Any) -> torch.Tensor:
    """``[fact pos]`` bool: the tokens of each prompt's subject (none where it is not in the prompt)."""
    bos = prefix_ids(tokenizer)
    where = torch.zeros_like(batch.attention_mask, dtype=torch.bool)
    for i, f in enumerate(facts):
        at = f.prompt.find(f.subject) if f.subject else -1
        if at < 0:
            continue
        start = len(bos) + len(tokenizer(f.prompt[:at], add_special_tokens=False)["input_ids"])
        end = len(bos) + len(tokenizer(f.prompt[:at + len(f.subject)], add_special_tokens=False)["input_ids"])
        where[i, start:min(end, int(batch.prompt_last[i]) + 1)] = True
    return where


@torch.inference_mode()
def _first_logp(model: Any, batch: Any) -> tuple[np.ndarray, np.ndarray]:
    """The answer's first-token log-prob and argmax hit, from one full pass (the patched
    states cover every position, so the pass is not cut or split)."""
    device = input_device(model)
    full = logits_of(model, batch.input_ids.to(device), batch.attention_mask.to(device))
    logits = logits_at_rows(full, batch.prompt_last.to(device)).float().log_softmax(-1)
    answer = batch.answer_ids[:, 0].to(logits.device)
    logp = logits.gather(-1, answer[:, None]).squeeze(-1)
    return logp.cpu().numpy(), (logits.argmax(-1) == answer).cpu().numpy()


@torch.inference_mode()
def patched_into_base(base: Any, source: Any, batch: Any, where: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``[fact block]`` answer log-probs and hits of ``base`` with ``source``'s block outputs at ``where``."""
    states: list[torch.Tensor] = []
    with block_outputs(source, states):
        source(batch.input_ids, attention_mask=batch.attention_mask)
    logps, hits = [], []
    for layer in range(len(decoder_layers(base))):
        with patched_block(base, layer, where, states[layer]):
            logp, hit = _first_logp(base, batch)
        logps.append(logp)
        hits.append(hit)
    return np.stack(logps, 1), np.stack(hits, 1)


def depth_of(me: Any, base: Any, ref: Any) -> dict[str, Any] | Missing:
    facts = [f for f in me.data.fact_set("forget") if f.subject and f.subject in f.prompt]
    if not facts:
        return Missing("no forget prompt names its subject")
    tok = me.model.tokenizer
    batch = tokenize_facts(tok, [f.prompt for f in facts], [f.answer for f in facts])
    where = subject_positions(tok, facts, batch)
    clean, clean_hits = base.cached("depth_clean", lambda: _first_logp(base.model.model, batch))
    mine, my_hits = me.cached("depth", lambda: patched_into_base(base.model.model, me.model.model, batch, where))
    out: dict[str, Any] = {"base_recall": float(clean_hits.mean()),
                           "model_recall": my_hits.mean(0).tolist(),
                           "delta_model": (clean[:, None] - mine).mean(0).tolist()}
    if ref is None:
        return out | {"uds": Missing("no retrain model: the depth score is relative to it")}
    theirs, their_hits = ref.cached("depth", lambda: patched_into_base(base.model.model, ref.model.model, batch, where))
    return out | {"retrain_recall": their_hits.mean(0).tolist(),
                  "delta_retrain": (clean[:, None] - theirs).mean(0).tolist(),
                  "uds": uds(clean[:, None] - theirs, clean[:, None] - mine)}


def run(ctx: Any) -> dict[str, Any]:
    depth = depth_of(ctx.me, ctx.base, ctx.ref)
    if isinstance(depth, Missing):
        return {"unlearning_depth": depth, "depth": depth}
    return {"unlearning_depth": depth["uds"], "depth": depth, "curves": {"depth": depth}}


register(Measurement(
    "depth", keys=("unlearning_depth", "depth"), run=run, needs=("base", "subjects"),
    columns=(Column("unlearning_depth", "unlearning depth (UDS)", "depth", "higher"),),
    doc="The base model on forget prompts with one block's subject states taken from this "
        "model: 1 = removed as deeply as retraining, 0 = intact (UDS).",
))
