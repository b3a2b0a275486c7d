"""Gradient ascent with a retain term: seed 000's algorithm (seed 001's with ``alpha=1``).

Loss per step, on one forget and one retain minibatch (AdamW, all parameters)::

    loss = alpha * (-forget_nll) + (1 - alpha) * retain_nll

``forget_nll`` / ``retain_nll``: mean over the minibatch's items of each item's mean NLL over its
loss tokens (fact answers; passage tokens). ``alpha=1`` is pure ascent and needs no retain set.

>>> result = unlearn(base_dir, task, method="gradient_ascent", alpha=0.5, lr=1e-4)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from loka.methods.base import UnlearnResult, UnlearnTask, register
from loka.methods.baselines.common import MethodData, retain_nll, run_optimisation
from loka.methods.baselines.defaults import DEFAULTS
from loka.methods.batches import item_nll
from loka.methods.settings import parse_settings, resolved, unit_interval
from loka.methods.training import StepLoss


@register("gradient_ascent")
def gradient_ascent(model: Any, tokenizer: Any, task: UnlearnTask, *, seed: int = 0,
                    progress: bool = True, **settings: Any) -> UnlearnResult:
    """Ascend the forget NLL, descend the retain NLL, weighted ``alpha`` / ``1 - alpha``."""
    cfg, extra = parse_settings("gradient_ascent", settings, DEFAULTS["gradient_ascent"],
                                {"alpha": unit_interval})
    alpha = float(extra["alpha"])
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

    result, _ = run_optimisation("gradient_ascent", model, tokenizer, task, cfg, resolved(cfg, extra),
                                 loss_fn, progress=progress, n_items=len(data.forget))
    return result
