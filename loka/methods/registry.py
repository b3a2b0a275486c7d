"""The method registry: every unlearning method is one file plus one registration.

A method file holds a frozen `MethodConfig` subclass (its settings) and its function
``run(model, tokenizer, task, cfg, *, seed, progress) -> UnlearnResult``, registered with
`register`. Everything else reads the registry: `loka.methods.unlearn`, the CLI's ``--method``
and ``--set`` (and their help), the comparison's method list and its order, the tables.

The method modules shipped with LOKA are listed once, in `MODULES`; more can be added without
touching LOKA with ``LOKA_PLUGINS=package.module,other.module`` (imported on first use, also
in the comparison's worker processes).

Example:
    >>> @register("mine", MyConfig, family="baseline", summary="my idea")     # doctest: +SKIP
    ... def mine(model, tokenizer, task, cfg, *, seed, progress): ...
    >>> get("mine").config.from_settings({"lr": "1e-3"})                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from loka.errors import LokaError
from loka.methods.config import MethodConfig
from loka.plugins import import_modules

Family = Literal["reference", "loka", "baseline", "control"]
FAMILIES: tuple[Family, ...] = ("reference", "loka", "baseline", "control")
# Registration order within a family is the results order; this is the order of the files.
MODULES: tuple[str, ...] = (
    "loka.methods.references",
    "loka.methods.localized.ablate",
    "loka.methods.localized.finetune",
    "loka.methods.localized.deep",
    "loka.methods.localized.mask",
    "loka.methods.baselines.gradient_ascent",
    "loka.methods.baselines.grad_diff",
    "loka.methods.baselines.npo",
    "loka.methods.baselines.task_vector",
    "loka.methods.baselines.counterexample",
    "loka.methods.baselines.output_suppression",
)
RunFn = Callable[..., Any]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, settings class, function and how it is shown.

    ``compare``: part of the default comparison. ``changes_weights``: False for a method that
    never edits a weight (its measurements are the base model's). ``cost``: relative cost, so
    parallel workers start the slowest first.
    """

    name: str
    config: type[MethodConfig]
    run: RunFn
    family: Family
    summary: str
    compare: bool = True
    changes_weights: bool = True
    cost: int = 0


_REGISTRY: dict[str, MethodSpec] = {}
_loaded = False


def register(name: str, config: type[MethodConfig], *, family: Family, summary: str,
             compare: bool = True, changes_weights: bool = True, cost: int = 0) -> Callable[[RunFn], RunFn]:
    """Register ``run`` under ``name`` with its settings class; a name is registered once."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    def deco(run: RunFn) -> RunFn:
        if name in _REGISTRY:
            raise ValueError(f"unlearning method {name!r} is already registered")
        config.method_name = name
        _REGISTRY[name] = MethodSpec(name, config, run, family, summary, compare, changes_weights, cost)
        return run

    return deco


def load() -> None:
    """Import every method module (LOKA's, then ``$LOKA_PLUGINS``) once."""
    global _loaded
    if not _loaded:
        _loaded = True
        import_modules(MODULES)


def get(name: str) -> MethodSpec:
    load()
    if name not in _REGISTRY:
        raise LokaError(f"unknown method {name!r}; choose one of: {', '.join(names())}")
    return _REGISTRY[name]


def _position(spec: MethodSpec) -> tuple[int, int]:
    """Family first, then the file's place in `MODULES` (plugins after, as registered)."""
    module = getattr(spec.run, "__module__", "")
    return FAMILIES.index(spec.family), MODULES.index(module) if module in MODULES else len(MODULES)


def names(*, compare_only: bool = False) -> list[str]:
    """Registered method names in the results order: family by family, file by file."""
    load()
    specs = sorted(_REGISTRY.values(), key=_position)  # stable: plugins keep registration order
    return [s.name for s in specs if s.compare or not compare_only]


def specs() -> list[MethodSpec]:
    return [_REGISTRY[n] for n in names()]


def parse_methods(text: str | None) -> list[str] | None:
    """``"base,loka-ft"`` -> checked names (None: the default comparison); one-line errors."""
    if text is None:
        return None
    items = [m.strip() for m in text.split(",")]
    picked = [m for m in items if m]
    if not picked:
        raise LokaError("--methods is empty; give comma-separated method names "
                        f"(known: {', '.join(names())})")
    for m in picked:
        get(m)
    return list(dict.fromkeys(picked))
