"""`AblationPlan`: a frozen, serialisable value saying which components to ablate, and how.

>>> plan = AblationPlan.zero([Component.parse("L0.N7"), Component.parse("L1.H2")],
...                          provenance=Provenance(ranking_method="atp"))
>>> AblationPlan.from_json(plan.to_json()) == plan
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from attribution.components import Component, ModelShape
from loka.engine.errors import PlanError

AblationMode = Literal["zero", "mean", "rescale"]
MODES: tuple[str, ...] = get_args(AblationMode)
FORMAT_VERSION = 1
MAX_JSON_CHARS = 64 * 1024 * 1024  # a plan for every component of a 70B model is far smaller


@dataclass(frozen=True)
class Provenance:
    """Where a plan came from: the ranking that chose its components, the model, the data."""

    ranking_method: str | None = None
    model_id: str | None = None
    data_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        try:
            json.dumps(self.extra, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise PlanError(f"provenance.extra must be plain JSON data: {e}") from None


@dataclass(frozen=True)
class AblationPlan:
    """Components to ablate and how: ``zero``, ``mean`` (set to a stored mean) or ``rescale``.

    ``factor`` (rescale only) is one float or one per component (a learned mask). ``means``
    (mean only) holds one tuple per component: a scalar ``(m,)`` for a neuron, a ``d_head``
    vector for a head. ``shape``, when given, pins the plan to models of exactly that shape.
    """

    components: tuple[Component, ...]
    mode: AblationMode = "zero"
    factor: float | tuple[float, ...] | None = None
    means: tuple[tuple[float, ...], ...] | None = None
    shape: ModelShape | None = None
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if not self.components:
            raise PlanError("an ablation plan needs at least one component")
        seen: set[Component] = set()
        for c in self.components:
            if c in seen:
                raise PlanError(f"component {c} appears twice in the plan")
            seen.add(c)
        if self.mode not in MODES:
            raise PlanError(f"mode must be one of {MODES}, got {self.mode!r}")
        if (self.mode == "rescale") != (self.factor is not None):
            raise PlanError("a factor is required for mode 'rescale' and only for it")
        if (self.mode == "mean") != (self.means is not None):
            raise PlanError("means are required for mode 'mean' and only for it "
                            "(compute them with mean_activations)")
        if self.factor is not None:
            self._check_factor(self.factor)
        if self.means is not None:
            self._check_means(self.means)

    def _check_factor(self, factor: float | tuple[float, ...]) -> None:
        factors = factor if isinstance(factor, tuple) else (factor,)
        if isinstance(factor, tuple) and len(factor) != len(self.components):
            raise PlanError(f"{len(factor)} factors for {len(self.components)} components")
        if not all(math.isfinite(f) for f in factors):
            raise PlanError(f"rescale factor must be finite, got {factor}")

    def _check_means(self, means: tuple[tuple[float, ...], ...]) -> None:
        if len(means) != len(self.components):
            raise PlanError(f"{len(means)} means for {len(self.components)} components")
        for c, m in zip(self.components, means, strict=True):
            if c.kind == "neuron" and len(m) != 1:
                raise PlanError(f"{c}: a neuron's mean is one number, got {len(m)}")
            if not all(math.isfinite(x) for x in m):
                raise PlanError(f"{c}: mean activation must be finite, got {m}")
        head_sizes = {len(m) for c, m in zip(self.components, means, strict=True)
                      if c.kind == "head"}
        if len(head_sizes) > 1:
            raise PlanError(f"head means have different lengths {sorted(head_sizes)}")

    @classmethod
    def zero(cls, components: Sequence[Component], **kw: Any) -> AblationPlan:
        return cls(tuple(components), "zero", **kw)

    @classmethod
    def rescale(cls, components: Sequence[Component], factor: float | Sequence[float],
                **kw: Any) -> AblationPlan:
        f = float(factor) if isinstance(factor, (int, float)) else tuple(map(float, factor))
        return cls(tuple(components), "rescale", factor=f, **kw)

    @classmethod
    def mean(cls, components: Sequence[Component], means: Sequence[Sequence[float]],
             **kw: Any) -> AblationPlan:
        return cls(tuple(components), "mean",
                   means=tuple(tuple(map(float, m)) for m in means), **kw)

    def factors(self) -> tuple[float, ...]:
        """One multiplier per component (1.0 unless rescaling)."""
        if self.factor is None:
            return (1.0,) * len(self.components)
        return self.factor if isinstance(self.factor, tuple) else (self.factor,) * len(self.components)

    def check_fits(self, shape: ModelShape) -> None:
        """Raise `PlanError` if the plan cannot apply to a model of ``shape``."""
        if self.shape is not None and self.shape != shape:
            raise PlanError(f"the plan was made for a model of shape {self.shape}, "
                            f"not this one ({shape})")
        for c in self.components:
            try:
                shape.check(c)
            except ValueError as e:
                raise PlanError(str(e)) from None
        for c, m in zip(self.components, self.means or (), strict=False):
            if c.kind == "head" and len(m) != shape.d_head:
                raise PlanError(f"{c}: mean has {len(m)} entries, the model's d_head is {shape.d_head}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "components": [str(c) for c in self.components],
            "mode": self.mode,
            "factor": list(self.factor) if isinstance(self.factor, tuple) else self.factor,
            "means": None if self.means is None else [list(m) for m in self.means],
            "shape": None if self.shape is None else vars(self.shape),
            "provenance": vars(self.provenance),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> AblationPlan:
        """Parse `to_json` output; anything malformed raises `PlanError` saying what."""
        if not isinstance(text, str):
            raise PlanError(f"an ablation plan is JSON text, got {type(text).__name__}")
        if len(text) > MAX_JSON_CHARS:
            raise PlanError(f"ablation plan is {len(text)} characters (limit {MAX_JSON_CHARS})")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PlanError(f"ablation plan is not valid JSON: {e}") from None
        except (ValueError, RecursionError) as e:  # an over-long integer; 100k nested brackets
            raise PlanError(f"ablation plan is not valid JSON ({type(e).__name__})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> AblationPlan:
        d = _expect(data, dict, "plan")
        unknown = set(d) - {"format", "components", "mode", "factor", "means", "shape", "provenance"}
        if unknown or d.get("format") != FORMAT_VERSION:
            raise PlanError(f"not an ablation plan of format {FORMAT_VERSION} "
                            f"(format={d.get('format')!r}, unknown keys {sorted(unknown)})")
        try:
            components = tuple(Component.parse(_expect(s, str, "component"))
                               for s in _expect(d.get("components"), list, "components"))
        except ValueError as e:
            raise PlanError(str(e)) from None
        factor = d.get("factor")
        if isinstance(factor, list):
            factor = tuple(_number(f, "factor") for f in factor)
        elif factor is not None:
            factor = _number(factor, "factor")
        means = d.get("means")
        if means is not None:
            means = tuple(tuple(_number(x, "mean") for x in _expect(m, list, "mean"))
                          for m in _expect(means, list, "means"))
        shape = d.get("shape")
        if shape is not None:
            fields = _expect(shape, dict, "shape")
            try:
                shape = ModelShape(**{k: _expect(fields[k], int, f"shape.{k}")
                                      for k in ModelShape.__dataclass_fields__})
            except KeyError as e:
                raise PlanError(f"shape lacks {e}") from None
        prov = dict(_expect(d.get("provenance", {}), dict, "provenance"))
        if set(prov) - set(Provenance.__dataclass_fields__):
            raise PlanError(f"unknown provenance keys {sorted(set(prov) - set(Provenance.__dataclass_fields__))}")
        for key in ("ranking_method", "model_id", "data_hash"):
            if prov.get(key) is not None:
                _expect(prov[key], str, f"provenance.{key}")
        _expect(prov.get("extra", {}), dict, "provenance.extra")
        mode = _expect(d.get("mode"), str, "mode")
        if mode not in MODES:
            raise PlanError(f"mode must be one of {MODES}, got {mode!r}")
        return cls(components, mode, factor, means, shape, Provenance(**prov))


def _expect(value: Any, kind: type, what: str) -> Any:
    # bool is an int in Python, but never a valid count or size here.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PlanError(f"{what} must be a {kind.__name__}, got {value!r}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlanError(f"{what} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # a JSON integer too large for a float
        raise PlanError(f"{what} is out of range: {str(value)[:20]}...") from None


def mean_activations(
    bridge: Any,
    input_ids: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"] | Bool[Tensor, "batch pos"],
    components: Sequence[Component],
    batch_size: int = 64,
) -> tuple[tuple[float, ...], ...]:
    """Each component's mean activation over the non-pad positions of a (retain) batch.

    Returns ``means`` for `AblationPlan.mean`: ``(m,)`` per neuron, a ``d_head`` tuple per head.
    Runs ``batch_size`` rows at a time, summing in float64 so a large set does not drift.

    >>> means = mean_activations(bridge, ids, mask, comps)  # doctest: +SKIP
    >>> plan = AblationPlan.mean(comps, means)               # doctest: +SKIP
    """
    mask = attention_mask.to(torch.bool)
    if not mask.any():
        raise PlanError("the attention mask has no non-pad position to average over")
    names = sorted({c.hook_name for c in components})
    sums: list[Tensor] = [torch.zeros(())] * len(components)
    with torch.no_grad():
        for start in range(0, input_ids.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            _, cache = bridge.run_with_cache(input_ids[rows], names_filter=names,
                                             attention_mask=attention_mask[rows].long())
            for i, c in enumerate(components):
                act = cache[c.hook_name][mask[rows]]  # [tokens d_mlp] | [tokens n_heads d_head]
                sums[i] = sums[i] + act[:, c.index].double().sum(0).cpu()
    n = int(mask.sum())
    return tuple(tuple(float(v) for v in (s / n).reshape(-1)) for s in sums)
