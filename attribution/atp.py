"""Attribution patching (Nanda 2023): every component's ablation effect from one forward and one
backward pass per minibatch, by a first-order Taylor expansion around the clean activation::

    metric(ablated c) - metric(clean) ~= (a'_c - a_c) . dmetric/da_c
    effect[c] = (a_c - a'_c) . dmetric/da_c     (summed over positions; mean over items)

so, as for exhaustive patching, larger = the set depends more on ``c``. Gradients are taken with
respect to zero "delta" tensors added at each hook, so nothing upstream is cut, the model's
parameters never receive ``.grad``, and frozen models work too.

GradDrop (AtP*, Kramar et al. 2024) targets cancellation, where paths through later layers hide
an effect: for each layer ``l`` the gradient through block ``l``'s residual contributions
(``hook_attn_out``, ``hook_mlp_out``) is dropped, and the estimate is
``sign(atp) * sum_l |atp_l| / (L - 1)`` (the term of a component's own layer is 0). All ``L``
dropped variants run as replicas of the batch in the same single forward and backward pass.

Example:
    >>> effects, fwd, bwd = atp_effects(bridge, forget, comps, Ablator.fit(bridge, None, [], "zero"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from attribution._common import Batch, HookFn, group_by_hook, input_device, metric_of, per_unit
from attribution.ablation import Ablator
from attribution.components import Component


def _capture(store: dict[str, tuple[Tensor, Tensor]], name: str) -> HookFn:
    def fn(act: Tensor, hook: Any) -> Tensor:
        delta = torch.zeros_like(act, requires_grad=True)
        store[name] = (act.detach(), delta)
        return act + delta

    return fn


def _drop_grad(layer_of_row: Tensor, layer: int) -> HookFn:
    """Rows whose replica drops ``layer`` pass its output on without a gradient."""

    def fn(out: Tensor, hook: Any) -> Tensor:
        drop = (layer_of_row == layer).reshape(-1, *([1] * (out.ndim - 1)))
        return torch.where(drop, out.detach(), out)

    return fn


def atp_effects(bridge: Any, batch: Batch, components: list[Component], ablator: Ablator, *,
                batch_size: int = 32, graddrop: bool = False,
                ) -> tuple[Float[Tensor, " n"], int, int]:
    """Attribution-patching effect per component; returns (effects, forward, backward passes)."""
    n_layers = int(bridge.cfg.n_layers)
    if graddrop and n_layers < 2:
        raise ValueError("GradDrop needs a model with at least 2 layers")
    groups = group_by_hook(components)
    device = input_device(bridge)
    replicas = n_layers + 1 if graddrop else 1
    total = torch.zeros(len(components), dtype=torch.float64)
    passes = 0
    with torch.enable_grad():
        for chunk in batch.by_length().chunks(batch_size):  # shortest first: little padding
            chunk = chunk.to(device)
            rows = chunk.repeat(replicas)
            # Replica 0 is plain AtP; replica r >= 1 drops the gradient through layer r - 1.
            layer_of_row = torch.arange(replicas, device=device).repeat_interleave(len(chunk)) - 1
            store: dict[str, tuple[Tensor, Tensor]] = {}
            hooks = [(g.hook, _capture(store, g.hook)) for g in groups]
            if graddrop:
                hooks += [(f"blocks.{layer}.hook_{part}_out", _drop_grad(layer_of_row, layer))
                          for layer in range(n_layers) for part in ("attn", "mlp")]
            metric = metric_of(bridge, rows, hooks)
            grads = torch.autograd.grad(metric.sum(), [store[g.hook][1] for g in groups])
            passes += 1
            for group, grad in zip(groups, grads, strict=True):
                act = store[group.hook][0]
                contrib = (act - ablator.tiled(group.hook, act, len(chunk), chunk.item_keys())) * grad
                est = per_unit(contrib, rows.attention_mask)[:, group.units.to(device)]
                est = est.view(replicas, len(chunk), -1).double()  # [replica item k]
                if graddrop:
                    est = est[0].sign() * est[1:].abs().sum(0) / (n_layers - 1)
                else:
                    est = est[0]
                total[group.slots] += est.sum(0).cpu()
    return (total / len(batch)).float(), passes, passes
