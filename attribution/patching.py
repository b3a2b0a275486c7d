"""Exhaustive activation patching: ablate one component at a time and measure the metric drop.

``effect[c] = mean over items of (metric(clean) - metric(c ablated))``, so larger = the set
depends more on ``c``. Batched: a minibatch of ``B`` items is replicated ``C`` times and replica
``r`` has its own component ablated, so one forward pass measures ``C`` components (all at the
same hook; ``C * B <= rows``). Each such pass starts at the patched layer from the minibatch's
clean pass and computes only the logits the metric reads (`attribution.resume`): on a CPU, where
a wide pass costs as much as the narrow ones it replaces, that is what makes batching pay (5.3x
the loop on the default model; full replicated passes 1.4x). `patch_effects_loop` is the plain
one-forward-per-component version, kept as the reference the batched one is tested and
benchmarked against.

Example:
    >>> ablator = Ablator.fit(bridge, retain, [c.hook_name for c in comps], "mean")  # doctest: +SKIP
    >>> effects, passes = patch_effects(bridge, forget, comps, ablator)  # [len(comps)]  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, cast

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from attribution._common import (
    Batch,
    HookGroup,
    group_by_hook,
    input_device,
    metric_of,
    read_width,
    run,
)
from attribution.ablation import Ablator
from attribution.components import Component, neuron_hook
from attribution.metrics import item_metric, item_metric_at, read_positions
from attribution.resume import CleanPass, neuron_delta, neuron_shortcut_holds, resume_logits


def _replicated_hook(ablator: Ablator, name: str, units: Tensor, keys: Tensor):
    """Hook ablating ``units[r]`` in replica ``r`` of a ``[len(units) * items, pos, ...]`` batch
    (``keys``: the items' `item_keys`)."""
    replicas, items = len(units), len(keys)

    def fn(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()  # never write into a tensor the model may still hold
        view = act.view(replicas, items, *act.shape[1:])  # [replica item pos units ...]
        rep = ablator.replacement(name, view[0], keys).expand_as(view[0])  # [item pos units ...]
        # Advanced indices on axes 0 and 3 (split by slices) move to the front: [replica item pos ...]
        view[torch.arange(replicas), :, :, units] = rep[:, :, units].movedim(2, 0)
        return act

    return fn


def _single_hook(ablator: Ablator, name: str, unit: int, keys: Tensor):
    def fn(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        act[:, :, unit] = ablator.replacement(name, act, keys).expand_as(act)[:, :, unit]
        return act

    return fn


def _plan(groups: list[HookGroup], replicas: int) -> list[tuple[HookGroup, slice]]:
    """The forward passes of one minibatch: each hook's units in runs of ``replicas``."""
    return [(g, slice(s, s + replicas)) for g in groups for s in range(0, len(g.units), replicas)]


@dataclass(frozen=True)
class _Shortcuts:
    """Which of `attribution.resume`'s shortcuts reproduce this model (checked on a clean pass)."""

    resume: bool
    short_last: bool = False
    neuron_layers: frozenset[int] = frozenset()

    @classmethod
    def check(cls, bridge: Any, clean: CleanPass, logits: Tensor, where: Tensor,
              groups: list[HookGroup]) -> _Shortcuts:
        if not clean.resumes(bridge, where, logits):
            warnings.warn("resuming patched passes from the clean pass does not reproduce this "
                          "model's logits; patching runs full forward passes instead", stacklevel=4)
            return cls(False)
        neurons = frozenset(g.layer for g in groups if g.hook == neuron_hook(g.layer)
                            and neuron_shortcut_holds(bridge, clean, g.layer, g.hook))
        return cls(True, clean.last_block_holds(bridge, where), neurons)


def patch_effects(bridge: Any, batch: Batch, components: list[Component], ablator: Ablator, *,
                  rows: int = 512, batch_size: int | None = 16, resume: bool = True,
                  progress: bool = True) -> tuple[Float[Tensor, " n"], int]:
    """Mean metric drop per component over ``batch``, many components per forward pass.

    Items are taken shortest first in minibatches of ``batch_size`` (None: as many as ``rows``
    allows), each replicated once per component up to ``rows`` rows per pass. With ``resume``
    (the default) a patched pass starts at the patched layer from the minibatch's clean pass and
    computes only what the metric reads (`attribution.resume`); where the model fails resume's
    self-checks, full passes are run. Returns the effects and the number of passes (full or
    resumed, clean passes included).
    """
    groups = group_by_hook(components)
    device = input_device(bridge)
    chunks = list(batch.by_length().chunks(min(batch_size or rows, rows)))
    plans = [_plan(groups, max(1, rows // len(chunk))) for chunk in chunks]
    total = torch.zeros(len(components), dtype=torch.float64, device=device)
    passes = 0
    shortcuts = None if resume else _Shortcuts(False)
    bar = tqdm(total=sum(len(p) + 1 for p in plans), desc="patching", disable=not progress)
    with torch.inference_mode(), bar:
        for part, plan in zip(chunks, plans, strict=True):
            chunk = cast(Batch, part.to(device))
            clean_pass: CleanPass | None = None
            if shortcuts is None or shortcuts.resume:
                width = read_width(chunk)
                clean_pass, logits = CleanPass.capture(bridge, chunk.input_ids[:, :width],
                                                       chunk.attention_mask[:, :width], [g.hook for g in groups])
                where = read_positions(chunk)[:, :width]
                shortcuts = shortcuts or _Shortcuts.check(bridge, clean_pass, logits, where, groups)
            resumed = clean_pass if shortcuts.resume else None  # set whenever shortcuts.resume
            if resumed is not None:
                clean = item_metric_at(resume_logits(bridge, resumed, resumed.last + 1, resumed.final,
                                                     where), chunk)
            else:
                clean = metric_of(bridge, chunk)
            passes += 1
            bar.update()
            for group, units in plan:
                unit_ids = group.units[units].to(device)
                if resumed is not None:
                    ablated = _resumed(bridge, resumed, chunk, group, unit_ids, ablator, shortcuts)
                else:
                    reps = chunk.repeat(len(unit_ids))
                    hook = _replicated_hook(ablator, group.hook, unit_ids, chunk.item_keys())
                    ablated = metric_of(bridge, reps, [(group.hook, hook)])
                drop = clean - ablated.view(len(unit_ids), len(chunk))  # [replica item]
                total[group.slots[units].to(device)] += drop.sum(-1).double()
                passes += 1
                bar.update()
    return (total / len(batch)).float().cpu(), passes


def _resumed(bridge: Any, clean: CleanPass, chunk: Batch, group: HookGroup, units: Tensor,
             ablator: Ablator, shortcuts: _Shortcuts) -> Float[Tensor, " rows"]:
    """Metric of ``chunk`` replicated once per unit, replica ``r`` with ``units[r]`` ablated,
    running only the blocks from the patched layer on (from the one above for a neuron)."""
    n, layer = len(units), group.layer
    reps = chunk.repeat(n)
    where = read_positions(reps)[:, : clean.final.shape[1]]
    if layer in shortcuts.neuron_layers and group.hook == neuron_hook(layer):
        post = clean.acts[group.hook]
        new = ablator.replacement(group.hook, post, chunk.item_keys()).expand_as(post)
        w_out = bridge.blocks[layer].mlp.W_out.to(post.dtype)
        hidden = (clean.output_of(layer) + neuron_delta(post, new, w_out, units)).flatten(0, 1)
        logits = resume_logits(bridge, clean, layer + 1, hidden, where, n, short_last=shortcuts.short_last)
    else:
        hook = _replicated_hook(ablator, group.hook, units, chunk.item_keys())
        with bridge.hooks(fwd_hooks=[(group.hook, hook)]):
            logits = resume_logits(bridge, clean, layer, clean.inputs[layer].repeat(n, 1, 1), where, n,
                                   short_last=shortcuts.short_last)
    return item_metric_at(logits, reps)


def patch_effects_loop(bridge: Any, batch: Batch, components: list[Component], ablator: Ablator,
                       *, batch_size: int = 64, progress: bool = False,
                       ) -> tuple[Float[Tensor, " n"], int]:
    """The same effects as `patch_effects`, one forward pass per component and minibatch."""
    device = input_device(bridge)
    total = torch.zeros(len(components), dtype=torch.float64)
    passes = 0
    with torch.inference_mode():
        for chunk in batch.chunks(batch_size):
            chunk = chunk.to(device)
            clean = item_metric(run(bridge, chunk), chunk)
            passes += 1
            for slot, c in enumerate(tqdm(components, desc="patching (loop)", disable=not progress)):
                hook = _single_hook(ablator, c.hook_name, c.index, chunk.item_keys())
                ablated = item_metric(run(bridge, chunk, [(c.hook_name, hook)]), chunk)
                total[slot] += float((clean - ablated).sum())
                passes += 1
    return (total / len(batch)).float(), passes
