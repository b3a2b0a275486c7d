"""The one typed identity of a model component, and the one place hook names are spelled.

A `Component` is an MLP neuron or an attention head: ``Component(layer=2, kind="head", index=3)``.
It knows the TransformerLens hook whose activation it owns (``blocks.2.attn.hook_z`` slice
``[..., 3, :]``, or ``blocks.2.mlp.hook_post`` slice ``[..., n]``). Parameter slices are per
architecture and live with the ablation engine (``loka.engine.adapters``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

ComponentKind = Literal["neuron", "head"]
KINDS: tuple[ComponentKind, ...] = ("neuron", "head")


def parse_kinds(text: str) -> tuple[ComponentKind, ...]:
    """``"neuron,head"`` -> ``("neuron", "head")``; ValueError unless a non-empty subset of KINDS.

    Example:
        >>> parse_kinds("neuron, head")
        ('neuron', 'head')
    """
    items = tuple(k.strip() for k in text.split(","))
    if not items or any(k not in KINDS for k in items):
        raise ValueError(f"kinds must be a non-empty subset of neuron,head; got {text!r}")
    return cast(tuple[ComponentKind, ...], items)


def neuron_hook(layer: int) -> str:
    """Hook of MLP neuron activations, ``[batch pos d_mlp]``."""
    return f"blocks.{layer}.mlp.hook_post"


def head_hook(layer: int) -> str:
    """Hook of per-head attention outputs before the output projection, ``[batch pos n_heads d_head]``."""
    return f"blocks.{layer}.attn.hook_z"


def resid_post_hook(layer: int) -> str:
    """Hook of the residual stream after block ``layer``, ``[batch pos d_model]``."""
    return f"blocks.{layer}.hook_resid_post"


def pattern_hook(layer: int) -> str:
    """Hook of attention patterns, ``[batch n_heads query_pos key_pos]``."""
    return f"blocks.{layer}.attn.hook_pattern"


@dataclass(frozen=True, order=True)
class Component:
    """An MLP neuron or an attention head: ``Component(1, "neuron", 117)`` prints as ``L1.N117``."""

    layer: int
    kind: ComponentKind
    index: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"component kind must be one of {KINDS}, got {self.kind!r}")
        if self.layer < 0 or self.index < 0:
            raise ValueError(f"component layer and index must be >= 0, got {self}")

    @property
    def hook_name(self) -> str:
        return neuron_hook(self.layer) if self.kind == "neuron" else head_hook(self.layer)

    def __str__(self) -> str:
        return f"L{self.layer}.{'N' if self.kind == 'neuron' else 'H'}{self.index}"

    @classmethod
    def parse(cls, text: str) -> Component:
        """Inverse of ``str``: ``Component.parse("L1.H3") == Component(1, "head", 3)``."""
        try:
            layer_part, unit = text.strip().split(".")
            if not layer_part.startswith("L") or unit[0] not in "NH":
                raise ValueError
            kind: ComponentKind = "neuron" if unit[0] == "N" else "head"
            return cls(int(layer_part[1:]), kind, int(unit[1:]))
        except (ValueError, IndexError):
            raise ValueError(
                f"cannot parse component {text!r}: expected 'L<layer>.N<neuron>' or 'L<layer>.H<head>'"
            ) from None

    def to_json(self) -> str:
        return str(self)


@dataclass(frozen=True)
class ModelShape:
    """The sizes that bound component indices: layers, heads per layer, neurons per layer."""

    n_layers: int
    n_heads: int
    d_mlp: int
    d_head: int
    d_model: int

    @classmethod
    def of(cls, bridge: Any) -> ModelShape:
        cfg = bridge.cfg
        return cls(int(cfg.n_layers), int(cfg.n_heads), int(cfg.d_mlp), int(cfg.d_head), int(cfg.d_model))

    def size(self, kind: ComponentKind) -> int:
        return self.d_mlp if kind == "neuron" else self.n_heads

    def components(self, kinds: tuple[ComponentKind, ...] = KINDS) -> list[Component]:
        """Every component of the given kinds, kind by kind, then layer by layer."""
        out: list[Component] = []
        for kind in kinds:
            for layer in range(self.n_layers):
                out.extend(Component(layer, kind, i) for i in range(self.size(kind)))
        return out

    def check(self, component: Component) -> None:
        """Raise ``ValueError`` naming the bound if ``component`` does not exist in this model."""
        if component.layer >= self.n_layers:
            raise ValueError(f"{component}: layer {component.layer} out of range (model has {self.n_layers} layers)")
        n = self.size(component.kind)
        if component.index >= n:
            raise ValueError(f"{component}: index {component.index} out of range (model has {n} {component.kind}s per layer)")


def validate_components(bridge: Any, components: list[Component]) -> None:
    """Check indices against the model's shape and every hook name against its hook dictionary."""
    shape = ModelShape.of(bridge)
    hooks = bridge.hook_dict
    for c in components:
        shape.check(c)
        if c.hook_name not in hooks:
            raise ValueError(f"{c}: the model has no hook {c.hook_name!r}; is it a TransformerBridge?")
