"""The weights a set of components owns, as boolean masks over the HF model's parameters.

A component owns its write slice (a neuron's output column, a head's slice of the attention
output projection) and its read slices (a neuron's input row and input-bias entry, a head's value
rows) — exactly the slices the ablation engine's adapters name. The shared output bias of a layer
belongs to no single component and is never included. A `ParamMask` zeroes every other gradient
entry after ``backward``, so an optimiser without weight decay leaves them bit-identical.

Example:
    >>> mask = ParamMask.of(model, ranking.top(256))  # doctest: +SKIP
    >>> loss.backward(); mask.apply_to_grads()  # doctest: +SKIP
    >>> mask.n_trainable, mask.n_total  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool
from torch import Tensor, nn

from attribution.components import Component
from loka.engine import adapter_for, hf_parameters


@dataclass(frozen=True, eq=False)
class ParamMask:
    """Per HF parameter name, the entries the chosen components own (True = trainable)."""

    params: dict[str, nn.Parameter]
    masks: dict[str, Bool[Tensor, "..."]]
    n_total: int

    @classmethod
    def of(cls, model: Any, components: Sequence[Component]) -> ParamMask:
        """Masks over ``model``'s own parameters for ``components`` (any supported architecture)."""
        if not components:
            raise ValueError("a parameter mask needs at least one component")
        adapter = adapter_for(model)
        every = hf_parameters(model)
        masks: dict[str, Tensor] = {}
        for c in components:
            owned = adapter.params(c)
            for s in (owned.write, *owned.reads):
                if s.bridge_copy or s.param not in every:
                    if s.required and not s.bridge_copy:
                        raise ValueError(f"{c}: the model has no parameter {s.param}")
                    continue
                param = every[s.param]
                mask = masks.setdefault(s.param, torch.zeros(param.shape, dtype=torch.bool,
                                                             device=param.device))
                s.of(mask).fill_(True)
        total = sum(p.numel() for p in model.parameters())  # tied weights counted once
        return cls({k: every[k] for k in masks}, masks, total)

    @property
    def n_trainable(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def trainable(self) -> list[nn.Parameter]:
        """The parameters that hold at least one owned entry (for the optimiser)."""
        return list(self.params.values())

    def apply_to_grads(self) -> None:
        """Zero every gradient entry outside the mask (call between ``backward`` and ``step``)."""
        for name, param in self.params.items():
            if param.grad is not None:
                param.grad.mul_(self.masks[name])

    def snapshot(self) -> dict[str, Tensor]:
        """Copies of the trainable parameters, to diff against later (`n_changed`)."""
        return {k: p.detach().clone() for k, p in self.params.items()}

    def n_changed(self, snapshot: dict[str, Tensor]) -> int:
        """How many individual weights differ from ``snapshot`` now."""
        return int(sum(int((p.detach() != snapshot[k]).sum()) for k, p in self.params.items()))

