"""Attribution methods by name. Adding one is a new module plus one `register` line.

A method takes ``(bridge, forget, retain, components, *, ablation, **options)`` and returns
`MethodScores`; `attribution.rank.rank` wraps them with timing and provenance into a `Ranking`.

Example:
    >>> register("mine", my_method)   # ValueError if "mine" is taken  # doctest: +SKIP
    >>> get_method("atp")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jaxtyping import Float
from torch import Tensor

from attribution.ranking import ContrastFormula


@dataclass(frozen=True, eq=False)
class MethodScores:
    """What a method measured: per-component effects on each set, and what it cost."""

    forget: Float[Tensor, " n"]
    retain: Float[Tensor, " n"]
    formula: ContrastFormula
    ablation: str | None
    forward_passes: int
    backward_passes: int
    options: dict[str, Any] = field(default_factory=dict)


Method = Callable[..., MethodScores]
METHODS: dict[str, Method] = {}


def register(name: str, method: Method) -> Method:
    """Add ``method`` under ``name``; refuses a name already taken."""
    if name in METHODS:
        raise ValueError(f"attribution method {name!r} is already registered")
    METHODS[name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown attribution method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name]
