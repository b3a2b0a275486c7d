"""Gradient ascent with a retain term: seed 000's algorithm (seed 001's with ``alpha=1``).

Loss per step, on one forget and one retain minibatch (AdamW, all parameters)::

    loss = alpha * (-forget_nll) + (1 - alpha) * retain_nll

``forget_nll`` / ``retain_nll``: mean over the minibatch's items of each item's mean NLL over its
loss tokens (fact answers; passage tokens). ``alpha=1`` is pure ascent and needs no retain set.

>>> result = unlearn(base_dir, task, method="gradient_ascent", alpha=0.5, lr=1e-4)   # doctest: +SKIP
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
    alpha: float = knob(0.5, ge=0, le=1, help="forget weight; 1 - alpha weighs the retain NLL")


@register("gradient_ascent", Config, family="baseline", cost=40,
          summary="ascend the forget NLL, descend the retain NLL (seed 000's algorithm)")
def gradient_ascent(model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
                    progress: bool) -> UnlearnResult:
    """Ascend the forget NLL, descend the retain NLL, weighted ``alpha`` / ``1 - alpha``."""
    alpha = cfg.alpha
    data = MethodData.build(model, tokenizer, task, cfg, seed=seed, need_retain=alpha < 1,
                            method="gradient_ascent")

    def loss_fn(step: int) -> StepLoss:
        forget = item_nll(model, data.next_forget()).mean()
        parts = {"forget_loss": -float(forget.detach()), "forget_nll": float(forget.detach())}
        if alpha == 1:
            return StepLoss(-forget, parts)
        retain = retain_nll(model, data)
        parts["retain_loss"] = float(retain.detach())
        return StepLoss(alpha * -forget + (1 - alpha) * retain, parts, forward_passes=2)

    result, _ = run_optimisation("gradient_ascent", model, tokenizer, task, cfg, loss_fn,
                                 progress=progress, n_items=len(data.forget))
    return result
