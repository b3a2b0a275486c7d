"""Activation statistics for selective pruning (Pochinkov & Schoots 2024).

Per component, the mean activation magnitude over every real (non-pad) token of a set:

- neuron ``n`` at layer ``l``: ``mean |hook_post[..., n]|``;
- head ``h`` at layer ``l``: ``mean ||hook_z[..., h, :]||_2`` (the norm of its output before W_O).

A `Ranking` built from these uses the ``ratio`` contrast ``forget / (retain + eps)``: a unit
much more active on the forget set than on the retain set is the one to prune. No gradient, one
forward pass per minibatch.

Example:
    >>> forget_stats, passes = activation_stats(bridge, forget, comps)  # [len(comps)]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from attribution._common import Batch, group_by_hook, input_device
from attribution.components import Component, neuron_hook


def activation_stats(bridge: Any, batch: Batch, components: list[Component], *,
                     batch_size: int = 64) -> tuple[Float[Tensor, " n"], int]:
    """Mean |activation| (neurons) or mean head-output norm (heads); returns (stats, passes)."""
    groups = group_by_hook(components)
    hooks = {g.hook for g in groups}
    device = input_device(bridge)
    total = torch.zeros(len(components), dtype=torch.float64)
    tokens, passes = 0, 0
    with torch.inference_mode():
        for chunk in batch.chunks(batch_size):
            chunk = chunk.to(device)
            _, cache = bridge.run_with_cache(chunk.input_ids, attention_mask=chunk.attention_mask,
                                             names_filter=lambda name: name in hooks)
            passes += 1
            real = chunk.attention_mask.bool()
            tokens += int(real.sum())
            for g in groups:
                act = cache[g.hook][real].float()  # [real tokens, units ...]
                size = act.abs() if g.hook == neuron_hook(g.layer) else act.norm(dim=-1)
                total[g.slots] += size[:, g.units.to(device)].double().sum(0).cpu()
    return (total / tokens).float(), passes
