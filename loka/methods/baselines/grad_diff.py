"""Gradient difference (GradDiff): forget ascent and retain descent with separate weights.

Loss per step, on one forget and one retain minibatch (AdamW, all parameters)::

    loss = -gamma * forget_nll + alpha * retain_nll

with the NLLs defined as in `gradient_ascent` (Liu et al. 2022; TOFU's ``grad_diff``).

>>> result = unlearn(base_dir, task, method="grad_diff", gamma=1.0, alpha=1.0)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from loka.methods.base import UnlearnResult, UnlearnTask, register
from loka.methods.baselines.common import MethodData, retain_nll, run_optimisation
from loka.methods.baselines.defaults import DEFAULTS
from loka.methods.batches import item_nll
from loka.methods.settings import non_negative, parse_settings, positive, resolved
from loka.methods.training import StepLoss


@register("grad_diff")
def grad_diff(model: Any, tokenizer: Any, task: UnlearnTask, *, seed: int = 0,
              progress: bool = True, **settings: Any) -> UnlearnResult:
    """``-gamma * forget_nll + alpha * retain_nll``; ``alpha > 0`` needs a retain set."""
    cfg, extra = parse_settings("grad_diff", settings, DEFAULTS["grad_diff"],
                                {"gamma": positive, "alpha": non_negative})
    gamma, alpha = float(extra["gamma"]), float(extra["alpha"])
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

    result, _ = run_optimisation("grad_diff", model, tokenizer, task, cfg, resolved(cfg, extra),
                                 loss_fn, progress=progress, n_items=len(data.forget))
    return result
