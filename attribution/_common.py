"""Small pieces every method shares: grouping components by hook, running a batch, sums per unit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from attribution.components import Component
from attribution.data import FactBatch, PassageBatch
from attribution.metrics import item_metric_at, read_positions

Batch = FactBatch | PassageBatch
HookFn = Callable[[Tensor, Any], Tensor | None]


@dataclass(frozen=True, eq=False)
class HookGroup:
    """The components that live at one hook: their positions in the ranking and unit indices."""

    hook: str
    layer: int
    slots: Int[Tensor, " k"]  # where each component sits in the full component list
    units: Int[Tensor, " k"]  # its neuron or head index at this hook


def group_by_hook(components: list[Component]) -> list[HookGroup]:
    """Components grouped by hook, in first-seen order (neurons and heads of a layer never mix)."""
    groups: dict[str, tuple[int, list[int], list[int]]] = {}
    for slot, c in enumerate(components):
        _, slots, units = groups.setdefault(c.hook_name, (c.layer, [], []))
        slots.append(slot)
        units.append(c.index)
    return [HookGroup(h, layer, torch.tensor(s), torch.tensor(u))
            for h, (layer, s, u) in groups.items()]


def input_device(model: Any) -> torch.device:
    """Where a model's inputs go: its device, or for a model dispatched by accelerate (parts on
    other devices or on disk, ``cfg.device`` then reads ``meta``) the device its first module
    runs on — accelerate's hooks move every activation on from there."""
    hf = getattr(model, "original_model", model)
    device_map = getattr(hf, "hf_device_map", None)
    if device_map:
        first = next(iter(device_map.values()))
        return torch.device(f"cuda:{first}" if isinstance(first, int) else
                            first if first not in ("disk", "meta") else "cpu")
    cfg = getattr(model, "cfg", None)
    if cfg is not None and getattr(cfg, "device", None) is not None:
        return torch.device(cfg.device)
    return next(model.parameters()).device


def run(bridge: Any, batch: Batch, fwd_hooks: list[tuple[str, HookFn]] | None = None
        ) -> Float[Tensor, "batch pos vocab"]:
    """Logits of ``batch`` with temporary forward hooks (removed even if the pass raises)."""
    with bridge.hooks(fwd_hooks=fwd_hooks or []):
        return bridge(batch.input_ids, attention_mask=batch.attention_mask)


def read_width(batch: Batch) -> int:
    """Positions a pass needs for ``batch``'s metric: through the last position it reads logits
    at (causal attention: the positions after it cannot change them)."""
    return int(read_positions(batch).any(0).nonzero().max()) + 1


def metric_of(bridge: Any, batch: Batch, fwd_hooks: list[tuple[str, HookFn]] | None = None
              ) -> Float[Tensor, " batch"]:
    """`item_metric` of ``batch`` from one pass over its first `read_width` positions (with
    temporary forward hooks), the log-softmax taken only where the metric reads."""
    width = read_width(batch)
    with bridge.hooks(fwd_hooks=fwd_hooks or []):
        logits = bridge(batch.input_ids[:, :width], attention_mask=batch.attention_mask[:, :width])
    return item_metric_at(logits[read_positions(batch)[:, :width]], batch)


def per_unit(contrib: Tensor, mask: Tensor) -> Float[Tensor, "batch units"]:
    """Sum ``contrib [batch pos units ...]`` over real positions and trailing axes -> ``[batch units]``
    (``contrib`` may stop short of ``mask``'s width: from a pass cut at `read_width`)."""
    mask = mask[:, : contrib.shape[1]]
    contrib = contrib * mask.reshape(*mask.shape, *([1] * (contrib.ndim - 2)))
    return contrib.sum(dim=(1, *range(3, contrib.ndim)))
