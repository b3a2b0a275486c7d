"""Integrated gradients over component activations (knowledge neurons, Dai et al. 2022).

For one hook at a time (one layer's neurons, or one layer's heads via ``hook_z``), every
activation is moved along the straight path from its ablated value ``a'`` to the clean ``a``::

    IG[c] = (a_c - a'_c) . mean_k dmetric/da_c at a' + alpha_k (a - a'),  alpha_k = (k + 1/2) / steps

summed over positions and averaged over items (midpoint rule). Completeness: the sum of ``IG``
over every unit of a hook approximates ``metric(clean) - metric(whole hook ablated)``, so,
as for patching, larger = the set depends more on the component. The ``steps`` points of a path
run as replicas of the minibatch: one forward and one backward pass per (hook, minibatch).

Example:
    >>> effects, fwd, bwd = ig_effects(bridge, forget, comps, ablator, steps=20)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from attribution._common import Batch, HookFn, group_by_hook, input_device, metric_of, per_unit
from attribution.ablation import Ablator
from attribution.components import Component


def _interpolate(ablator: Ablator, name: str, alphas: Tensor, keys: Tensor,
                 store: dict[str, Tensor]) -> HookFn:
    """Replace replica ``k``'s activation by ``a' + alpha_k (a - a')`` as a gradient leaf."""
    items = len(keys)

    def fn(act: Tensor, hook: Any) -> Tensor:
        base = ablator.tiled(name, act, items, keys).expand_as(act)
        alpha = alphas.repeat_interleave(items).reshape(-1, *([1] * (act.ndim - 1)))
        # Upstream of the one hook on the path needs no gradient, so a detached leaf is exact.
        point = (base + alpha * (act - base)).detach().requires_grad_(True)
        store["clean"], store["base"], store["point"] = act.detach(), base, point
        return point

    return fn


def ig_effects(bridge: Any, batch: Batch, components: list[Component], ablator: Ablator, *,
               steps: int = 20, rows: int = 512,
               ) -> tuple[Float[Tensor, " n"], int, int]:
    """Integrated-gradients attribution per component; returns (effects, forward, backward passes).

    ``rows`` bounds the replicated batch (items x steps) of one pass.
    """
    if steps < 1:
        raise ValueError(f"integrated gradients needs steps >= 1, got {steps}")
    device = input_device(bridge)
    alphas = (torch.arange(steps, device=device) + 0.5) / steps
    total = torch.zeros(len(components), dtype=torch.float64)
    passes = 0
    with torch.enable_grad():
        for chunk in batch.by_length().chunks(max(1, rows // steps)):  # shortest first: little padding
            chunk = chunk.to(device)
            reps = chunk.repeat(steps)
            for group in group_by_hook(components):
                store: dict[str, Tensor] = {}
                hook = _interpolate(ablator, group.hook, alphas, chunk.item_keys(), store)
                metric = metric_of(bridge, reps, [(group.hook, hook)])
                (grad,) = torch.autograd.grad(metric.sum(), store["point"])
                passes += 1
                mean_grad = grad.view(steps, len(chunk), *grad.shape[1:]).mean(0)
                clean, base = store["clean"][: len(chunk)], store["base"][: len(chunk)]
                contrib = (clean - base) * mean_grad
                est = per_unit(contrib, chunk.attention_mask)[:, group.units.to(device)]
                total[group.slots] += est.double().sum(0).cpu()
    return (total / len(batch)).float(), passes, passes
