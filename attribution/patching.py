"""Exhaustive activation patching: ablate one component at a time and measure the metric drop.

``effect[c] = mean over items of (metric(clean) - metric(c ablated))``, so larger = the set
depends more on ``c``. Batched: a minibatch of ``B`` items is replicated ``C`` times and replica
``r`` has its own component ablated, so one forward pass measures ``C`` components (all at the
same hook; ``C * B <= rows``). `patch_effects_loop` is the plain one-forward-per-component
version, kept as the reference the batched one is tested and benchmarked against.

Example:
    >>> ablator = Ablator.fit(bridge, retain, [c.hook_name for c in comps], "mean")
    >>> effects, passes = patch_effects(bridge, forget, comps, ablator)  # [len(comps)]
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from attribution._common import Batch, HookGroup, group_by_hook, run
from attribution.ablation import Ablator
from attribution.components import Component
from attribution.metrics import item_metric


def _replicated_hook(ablator: Ablator, name: str, units: Tensor, items: int):
    """Hook ablating ``units[r]`` in replica ``r`` of a ``[len(units) * items, pos, ...]`` batch."""
    replicas = len(units)

    def fn(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()  # never write into a tensor the model may still hold
        view = act.view(replicas, items, *act.shape[1:])  # [replica item pos units ...]
        rep = ablator.replacement(name, view[0]).expand_as(view[0])  # [item pos units ...]
        # Advanced indices on axes 0 and 3 (split by slices) move to the front: [replica item pos ...]
        view[torch.arange(replicas), :, :, units] = rep[:, :, units].movedim(2, 0)
        return act

    return fn


def _single_hook(ablator: Ablator, name: str, unit: int):
    def fn(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        act[:, :, unit] = ablator.replacement(name, act).expand_as(act)[:, :, unit]
        return act

    return fn


def _plan(groups: list[HookGroup], replicas: int) -> list[tuple[HookGroup, slice]]:
    """The forward passes of one minibatch: each hook's units in runs of ``replicas``."""
    return [(g, slice(s, s + replicas)) for g in groups for s in range(0, len(g.units), replicas)]


def patch_effects(bridge: Any, batch: Batch, components: list[Component], ablator: Ablator, *,
                  rows: int = 512, batch_size: int | None = None, progress: bool = True,
                  ) -> tuple[Float[Tensor, " n"], int]:
    """Mean metric drop per component over ``batch``, many components per forward pass.

    ``rows`` bounds the replicated batch (items x replicas) of one pass; ``batch_size`` caps the
    items per minibatch (default: ``rows``). Returns the effects and the number of forward passes.
    """
    groups = group_by_hook(components)
    device = bridge.cfg.device
    chunks = list(batch.chunks(min(batch_size or rows, rows)))
    plans = [_plan(groups, max(1, rows // len(chunk))) for chunk in chunks]
    total = torch.zeros(len(components), dtype=torch.float64, device=device)
    passes = 0
    bar = tqdm(total=sum(len(p) + 1 for p in plans), desc="patching", disable=not progress)
    with torch.inference_mode(), bar:
        for chunk, plan in zip(chunks, plans, strict=True):
            chunk = chunk.to(device)
            clean = item_metric(run(bridge, chunk), chunk)
            passes += 1
            bar.update()
            for group, units in plan:
                unit_ids = group.units[units].to(device)
                reps = chunk.repeat(len(unit_ids))
                hook = _replicated_hook(ablator, group.hook, unit_ids, len(chunk))
                ablated = item_metric(run(bridge, reps, [(group.hook, hook)]), reps)
                drop = clean - ablated.view(len(unit_ids), len(chunk))  # [replica item]
                total[group.slots[units].to(device)] += drop.sum(-1).double()
                passes += 1
                bar.update()
    return (total / len(batch)).float().cpu(), passes


def patch_effects_loop(bridge: Any, batch: Batch, components: list[Component], ablator: Ablator,
                       *, batch_size: int = 64, progress: bool = False,
                       ) -> tuple[Float[Tensor, " n"], int]:
    """The same effects as `patch_effects`, one forward pass per component and minibatch."""
    device = bridge.cfg.device
    total = torch.zeros(len(components), dtype=torch.float64)
    passes = 0
    with torch.inference_mode():
        for chunk in batch.chunks(batch_size):
            chunk = chunk.to(device)
            clean = item_metric(run(bridge, chunk), chunk)
            passes += 1
            for slot, c in enumerate(tqdm(components, desc="patching (loop)", disable=not progress)):
                hook = _single_hook(ablator, c.hook_name, c.index)
                ablated = item_metric(run(bridge, chunk, [(c.hook_name, hook)]), chunk)
                total[slot] += float((clean - ablated).sum())
                passes += 1
    return (total / len(batch)).float(), passes
