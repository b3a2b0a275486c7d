"""Preview a plan with hooks: the model behaves as if ablated inside the block, untouched after.

>>> with preview(bridge, plan):                # doctest: +SKIP
...     ablated_logits = bridge(tokens)
>>> original_logits = bridge(tokens)          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from attribution.components import Component, ModelShape, validate_components
from loka.engine.plan import AblationPlan

HookFn = Callable[..., Tensor]


def ablation_hooks(plan: AblationPlan, shape: ModelShape) -> list[tuple[str, HookFn]]:
    """``(hook_name, fn)`` pairs applying ``plan``; for ``bridge.hooks`` or ``run_with_hooks``."""
    plan.check_fits(shape)
    by_hook: dict[str, list[int]] = {}
    for i, c in enumerate(plan.components):
        by_hook.setdefault(c.hook_name, []).append(i)
    return [(name, _hook_for(plan, idx, shape)) for name, idx in by_hook.items()]


def _hook_for(plan: AblationPlan, idx: list[int], shape: ModelShape) -> HookFn:
    comps: list[Component] = [plan.components[i] for i in idx]
    is_head = comps[0].kind == "head"
    # Per-unit tensors shaped to broadcast over [batch pos d_mlp] or [batch pos n_heads d_head].
    size = shape.n_heads if is_head else shape.d_mlp
    tail = (size, 1) if is_head else (size,)
    mask = torch.zeros(tail, dtype=torch.bool)
    scale = torch.ones(tail, dtype=torch.float64)
    value = torch.zeros((size, shape.d_head) if is_head else (size,), dtype=torch.float64)
    factors = plan.factors()
    for i, c in zip(idx, comps, strict=True):
        mask[c.index] = True
        scale[c.index] = factors[i]
        if plan.means is not None:
            value[c.index] = torch.tensor(plan.means[i], dtype=torch.float64).reshape(value[c.index].shape)

    def hook(act: Float[Tensor, "..."], hook: Any = None) -> Float[Tensor, "..."]:
        # Out of place, so autograd through a previewed model stays valid.
        if plan.mode == "rescale":
            return act * scale.to(act.device, act.dtype)
        return torch.where(mask.to(act.device), value.to(act.device, act.dtype), act)

    return hook


@contextmanager
def preview(bridge: Any, plan: AblationPlan) -> Iterator[Any]:
    """Run ``bridge`` with ``plan`` applied by hooks; the hooks go even if the body raises."""
    shape = ModelShape.of(bridge)
    plan.check_fits(shape)
    validate_components(bridge, list(plan.components))
    hooks = ablation_hooks(plan, shape)
    # bridge.hooks removes exactly the hooks it added, in a finally, even when adding one fails.
    with bridge.hooks(fwd_hooks=hooks):
        yield bridge
