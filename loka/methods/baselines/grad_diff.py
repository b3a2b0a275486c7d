"""Gradient difference (GradDiff): forget ascent and retain descent with separate weights.

Loss per step, on one forget and one retain minibatch (AdamW, all parameters)::

    loss = -gamma * forget_nll + alpha * retain_nll

with the NLLs defined as in `gradient_ascent` (Liu et al. 2022; TOFU's ``grad_diff``).

>>> result = unlearn(base_dir, task, method="grad_diff", gamma=1.0, alpha=1.0)   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loka.methods.baselines.common import MethodData, TrainConfig, retain_nll, run_optimisation
from loka.methods.batches import item_nll
from loka.methods.config import knob
from loka.methods.loop import StepLoss
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class Config(TrainConfig):
    gamma: float = knob(1.0, gt=0, help="weight of the forget ascent")
    alpha: float = knob(5.0, ge=0, help="weight of the retain NLL (heavier than GA's 1:1 keeps more)")


@register("grad_diff", Config, family="baseline", cost=80,
          summary="GradDiff: -gamma * forget NLL + alpha * retain NLL (TOFU's grad_diff)")
def grad_diff(model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
              progress: bool) -> UnlearnResult:
    """``-gamma * forget_nll + alpha * retain_nll``; ``alpha > 0`` needs a retain set."""
    gamma, alpha = cfg.gamma, cfg.alpha
    data = MethodData.build(model, tokenizer, task, cfg, seed=seed, need_retain=alpha > 0,
                            method="grad_diff")

    def loss_fn(step: int) -> StepLoss:
        forget = item_nll(model, data.next_forget()).mean()
        parts = {"forget_loss": -gamma * float(forget.detach()), "forget_nll": float(forget.detach())}
        if alpha == 0:
            return StepLoss(-gamma * forget, parts)
        retain = retain_nll(model, data)
        parts["retain_loss"] = alpha * float(retain.detach())
        return StepLoss(-gamma * forget + alpha * retain, parts, forward_passes=2)

    result, _ = run_optimisation("grad_diff", model, tokenizer, task, cfg, loss_fn,
                                 progress=progress, n_items=len(data.forget))
    return result
