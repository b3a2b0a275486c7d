"""The weights a set of components owns: as boolean masks, or as small trainable deltas.

A component owns its write slice (a neuron's output column, a head's slice of the attention
output projection) and its read slices (a neuron's input row and input-bias entry, a head's value
rows) — exactly the slices the ablation engine's adapters name. The shared output bias of a layer
belongs to no single component and is never included.

Two ways to train only those entries:
- `ParamMask`: the whole parameter tensors are trainable and every other gradient entry is zeroed
  after ``backward``; simple, but the optimiser keeps state (and the divergence guard a snapshot)
  for every entry of every touched tensor — for a 135M-parameter Llama, most of its MLP weights.
- `SliceDeltas`: one small zero-initialised delta per owned slice (``[d_model, k]`` for ``k``
  neurons' output columns of a layer, ...), added to the frozen layer's output by a forward hook
  (``y += x[..., cols] @ D.T`` or ``y[..., rows] += x @ D.T``), written into the weights at the
  end (`SliceDeltas.merge`). Gradients and Adam's moments are those of the masked entries, so the
  two train the same model up to the order of float sums; memory grows with the number of owned
  entries, not with the model. Inside `SliceDeltas.routed`, the deltas learn only from the
  positions a mask marks (the forward unchanged).

Example:
    >>> deltas = SliceDeltas.of(model, ranking.top(256))  # doctest: +SKIP
    >>> with deltas.attached(model):  # doctest: +SKIP
    ...     optimise(model, loss_fn, settings, params=deltas.named())
    >>> deltas.merge(model); deltas.n_trainable, deltas.n_total  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from attribution.components import Component
from loka.engine import adapter_for, hf_parameters
from loka.memory import activations_kept


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
        params: dict[str, nn.Parameter] = {}
        masks: dict[str, Tensor] = {}
        for s, param in _owned_slices(model, components):
            params[s.param] = param
            mask = masks.setdefault(s.param, torch.zeros(param.shape, dtype=torch.bool, device=param.device))
            s.of(mask).fill_(True)
        total = sum(p.numel() for p in model.parameters())  # tied weights counted once
        return cls(params, masks, total)

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



def _owned_slices(model: Any, components: Sequence[Component]) -> Iterator[tuple[Any, nn.Parameter]]:
    """``(slice, parameter)`` for every slice the components own that the model has."""
    adapter = adapter_for(model)
    every = hf_parameters(model)
    for c in components:
        owned = adapter.params(c)
        for s in (owned.write, *owned.reads):
            if s.bridge_copy or s.param not in every:
                if s.required and not s.bridge_copy:
                    raise ValueError(f"{c}: the model has no parameter {s.param}")
                continue
            yield s, every[s.param]


@dataclass(frozen=True, eq=False)
class SliceDelta:
    """The trainable change of one parameter's owned rows or columns.

    ``dim`` is the sliced axis of the HF parameter and ``index`` the owned positions along it;
    ``delta`` has the parameter's shape with that axis cut to ``len(index)``. ``output``: the
    sliced axis is the module's output features (a Linear weight's rows, a Conv1D weight's
    columns, a bias) rather than its input features.
    """

    name: str
    module: str
    dim: int
    index: Int[Tensor, " k"]
    delta: nn.Parameter
    output: bool
    transposed: bool  # GPT-2's Conv1D stores ``[in, out]``, the transpose of nn.Linear
    is_bias: bool

    def correction(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... k_or_out"]:
        """What this delta adds to the module's output for input ``x``."""
        d = self.delta
        if self.is_bias:
            return d.expand(*x.shape[:-1], -1)
        if self.output:  # owned output features: every input feeds them
            return x @ (d if self.transposed else d.T)
        return x.index_select(-1, self.index) @ (d if self.transposed else d.T)


def _output_axis(module: nn.Module) -> int:
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, Conv1D):
        return 1
    if isinstance(module, nn.Linear):
        return 0
    raise ValueError(f"cannot train slices of a {type(module).__name__}; only Linear and Conv1D")


@dataclass(frozen=True, eq=False)
class SliceDeltas:
    """Zero-initialised deltas for the entries ``components`` own (see the module docstring)."""

    deltas: tuple[SliceDelta, ...]
    n_total: int
    route: list[Tensor | None] = field(default_factory=lambda: [None], repr=False)  # `routed`'s mask, while set

    @classmethod
    def of(cls, model: Any, components: Sequence[Component]) -> SliceDeltas:
        """Deltas over ``model``'s own parameters (a plain HF model) for ``components``."""
        if not components:
            raise ValueError("slice deltas need at least one component")
        positions: dict[tuple[str, int], set[int]] = {}
        params: dict[str, nn.Parameter] = {}
        for s, param in _owned_slices(model, components):
            positions.setdefault((s.param, s.dim), set()).update(range(s.start, s.stop))
            params[s.param] = param
        dims: dict[str, set[int]] = {}
        for name, dim in positions:
            dims.setdefault(name, set()).add(dim)
        if any(len(d) > 1 for d in dims.values()):  # entries on both axes would be counted twice
            raise ValueError(f"a parameter is owned along two axes: {sorted(n for n, d in dims.items() if len(d) > 1)}")
        modules = dict(model.named_modules())
        out = []
        for (name, dim), where in sorted(positions.items()):
            param, module_name = params[name], name.rsplit(".", 1)[0]
            module = modules[module_name]
            axis, is_bias = _output_axis(module), name.endswith(".bias")
            index = torch.tensor(sorted(where), dtype=torch.long, device=param.device)
            delta = nn.Parameter(torch.zeros_like(param.detach().index_select(dim, index)))
            out.append(SliceDelta(name, module_name, dim, index, delta, is_bias or dim == axis,
                                  axis == 1, is_bias))
        total = sum(p.numel() for p in model.parameters())  # tied weights counted once
        return cls(tuple(out), total)

    @property
    def n_trainable(self) -> int:
        return sum(d.delta.numel() for d in self.deltas)

    def named(self) -> list[tuple[str, nn.Parameter]]:
        """``(parameter name + slice, delta)`` for the optimiser and the divergence guard."""
        return [(f"{d.name}[{d.dim}]", d.delta) for d in self.deltas]

    @contextlib.contextmanager
    def attached(self, model: Any) -> Iterator[SliceDeltas]:
        """Add every delta to its module's output while inside; hooks removed in ``finally``."""
        modules = dict(model.named_modules())
        by_module: dict[str, list[SliceDelta]] = {}
        for d in self.deltas:
            by_module.setdefault(d.module, []).append(d)
        handles = []
        try:
            for name, deltas in by_module.items():
                handles.append(modules[name].register_forward_hook(_hook(tuple(deltas), self.route)))
            yield self
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def routed(self, model: Any, where: Bool[Tensor, "batch pos"]) -> Iterator[None]:
        """Inside (and `attached`), the deltas learn only from the positions ``where`` marks in
        ``model``'s next forwards' rows: every position computes what it did, but a correction at
        an unmarked position is detached, so no gradient reaches a delta through it (gradient
        routing by position, Cloud et al. 2024, arXiv 2410.04332). A marked position's state still
        reads the others through attention; the delta changes only what is computed at the marked
        ones. The model's layers keep their activations inside (`activations_kept`): a layer
        recomputed in the backward pass, after the block, would no longer see the mask."""
        self.route[0] = where
        try:
            with activations_kept(model):
                yield
        finally:
            self.route[0] = None

    @torch.no_grad()
    def owned_values(self, model: Any) -> list[Tensor]:
        """Copies of the owned entries' current values (to count what `merge` changed)."""
        every = hf_parameters(model)
        return [every[d.name].detach().index_select(d.dim, d.index).clone() for d in self.deltas]

    @torch.no_grad()
    def merge(self, model: Any) -> None:
        """Add every delta into its parameter (in place) and zero the deltas: the model alone
        now computes what it computed with the deltas attached."""
        every = hf_parameters(model)
        for d in self.deltas:
            every[d.name].index_add_(d.dim, d.index, d.delta.detach().to(every[d.name].dtype))
            d.delta.zero_()

    def n_changed(self, model: Any, before: list[Tensor]) -> int:
        """How many owned weights differ from ``before`` (from `owned_values`) now."""
        now = self.owned_values(model)
        return int(sum(int((a != b).sum()) for a, b in zip(now, before, strict=True)))


def _hook(deltas: tuple[SliceDelta, ...], route: list[Tensor | None]) -> Any:
    def fn(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        x = inputs[0]
        where = None if route[0] is None else route[0][:, : x.shape[-2], None].to(x.device)
        for d in deltas:
            corr = d.correction(x).to(output.dtype)
            if where is not None:  # `SliceDeltas.routed`: only the marked positions' corrections train
                corr = torch.where(where, corr, corr.detach())
            output = output.index_add(-1, d.index, corr) if d.output else output + corr
        return output

    return fn
