"""Negative Preference Optimisation (Zhang et al. 2024) with an optional retain NLL term.

Per forget item, with ``logp`` the summed log-prob of its loss tokens (a fact's answer given its
prompt; a passage's tokens) under the model being trained and under the frozen reference (the
model before unlearning)::

    npo = -(2 / beta) * logsigmoid(-beta * (logp_theta - logp_ref))
    loss = gamma * mean(npo) + alpha * retain_nll

The reference never changes, so its log-probs are computed once, up front, from the untouched
model: identical to keeping a frozen copy, at the cost of one pass over the forget set instead of
a second model in memory and a reference forward pass every step.

>>> result = unlearn(base_dir, task, method="npo", beta=0.1, alpha=1.0)   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from loka.methods.baselines.common import MethodData, TrainConfig, retain_nll, run_optimisation
from loka.methods.batches import TokenSet, item_logprob
from loka.methods.config import knob
from loka.methods.loop import StepLoss
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class Config(TrainConfig):
    beta: float = knob(0.1, gt=0, help="NPO inverse temperature")
    gamma: float = knob(1.0, gt=0, help="weight of the NPO forget loss")
    alpha: float = knob(5.0, ge=0, help="weight of the retain NLL")


@torch.no_grad()
def reference_logprobs(model: Any, data: TokenSet, batch_size: int) -> Float[Tensor, " item"]:
    """``logp_ref`` of every item, from the model as it is now (call before any update)."""
    model.eval()
    chunks = [item_logprob(model, data.select(torch.arange(i, min(i + batch_size, len(data)))))
              for i in range(0, len(data), batch_size)]
    return torch.cat(chunks).detach()


def npo_loss(logp: Float[Tensor, " item"], logp_ref: Float[Tensor, " item"], beta: float) -> Float[Tensor, ""]:
    """Mean NPO loss; as ``beta -> 0`` it tends to ``mean(logp)`` (gradient ascent's direction)."""
    return (-2.0 / beta * F.logsigmoid(-beta * (logp - logp_ref))).mean()


@register("npo", Config, family="baseline", cost=70,
          summary="Negative Preference Optimisation against the frozen model + retain NLL")
def npo(model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
        progress: bool) -> UnlearnResult:
    """NPO on the forget set plus ``alpha`` times the retain NLL (``alpha > 0`` needs a retain set)."""
    beta, gamma, alpha = cfg.beta, cfg.gamma, cfg.alpha
    data = MethodData.build(model, tokenizer, task, cfg, seed=seed, need_retain=alpha > 0, method="npo")
    logp_ref = reference_logprobs(model, data.forget, cfg.batch_size)
    ref_passes = -(-len(data.forget) // cfg.batch_size)

    def loss_fn(step: int) -> StepLoss:
        index, batch = data.draw_forget()
        logp = item_logprob(model, batch)
        forget = npo_loss(logp, logp_ref[index].to(logp.device), beta)
        nll = float((-logp.detach() / batch.loss_mask.sum(-1).clamp(min=1).to(logp.device)).mean())
        parts = {"forget_loss": gamma * float(forget.detach()), "forget_nll": nll}
        if alpha == 0:
            return StepLoss(gamma * forget, parts)
        retain = retain_nll(model, data)
        parts["retain_loss"] = alpha * float(retain.detach())
        return StepLoss(gamma * forget + alpha * retain, parts, forward_passes=2)

    result, _ = run_optimisation("npo", model, tokenizer, task, cfg, loss_fn,
                                 progress=progress, n_items=len(data.forget))
    result.forward_passes += ref_passes
    return result
