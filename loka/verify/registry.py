"""The measurement registry: every verifier measurement is one file plus one registration.

A `Measurement` declares its name, what it needs (a retrain model, holdout facts, passages...),
how it runs on a model (``run(ctx) -> {report key: value}``), the report keys it fills, the
columns it adds to the tables and the caveats it can raise. `VerifyReport`, the JSON keys, the
terminal, Markdown and HTML tables and the report's caveats are all read from here.

The measurement files shipped with LOKA are listed once, in `MODULES`; more can be added with
``LOKA_PLUGINS=package.module`` (the same variable as for methods).

Example:
    >>> register(Measurement("answer_length", keys=("answer_length",),
    ...                      run=lambda ctx: {"answer_length": 3.0},
    ...                      columns=(Column("answer_length", "answer length", "outcome"),)))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from loka.plugins import import_modules

Group = Literal["outcome", "depth", "attacks", "cost"]
GROUPS: tuple[Group, ...] = ("outcome", "depth", "attacks", "cost")
Better = Literal["lower", "higher", "half", "zero", ""]
MODULES: tuple[str, ...] = (
    "loka.verify.measurements.accuracy",
    "loka.verify.measurements.queries",
    "loka.verify.measurements.never_known",
    "loka.verify.measurements.mia",
    "loka.verify.measurements.grades",
    "loka.verify.measurements.truth_ratio",
    "loka.verify.measurements.probes",
    "loka.verify.measurements.logit_lens",
    "loka.verify.measurements.relearn",
    "loka.verify.measurements.benign_relearn",
    "loka.verify.measurements.icl",
    "loka.verify.measurements.quantization",
    "loka.verify.measurements.depth",
    "loka.verify.measurements.extraction",
    "loka.verify.measurements.perplexity",
    "loka.verify.measurements.damage",
    "loka.verify.measurements.cost",
)
# What a measurement can need, and what the report says when it is not there.
NEEDS: dict[str, str] = {
    "retrain": "no retrain model: it is relative to a model trained without the forget set",
    "holdout": "no holdout facts (never-seen people): it needs non-members to compare with",
    "passages": "no forget passages in the data",
    "subjects": "the forget facts name no subjects",
    "forget_facts": "no forget facts in the data",
    "base": "no base model given (the model before unlearning)",
}


@dataclass(frozen=True)
class Column:
    """One table column: the report key it shows (dotted path), its header and its table.

    ``better`` says which way is good (``half``: 0.5 is ideal, an MIA AUC; ``zero``: 0 is
    ideal, PrivLeak); ``wide`` puts it in the terminal's comparison table, ``summary`` in the
    demo's compact closing table.
    """

    key: str
    header: str
    group: Group
    better: Better = ""
    wide: bool = False
    summary: bool = False

    def title(self) -> str:
        arrow = {"lower": " ↓", "higher": " ↑", "half": " →0.5", "zero": " →0", "": ""}[self.better]
        return self.header + arrow


@dataclass(frozen=True)
class Measurement:
    """A registered measurement (see the module docstring).

    ``caveats(entry, retrain_entry)`` returns sentences for the report's caveats: what the
    headline numbers would hide, computed from the measurement's own values.
    """

    name: str
    keys: tuple[str, ...]
    run: Callable[[Any], dict[str, Any]]
    columns: tuple[Column, ...] = ()
    needs: tuple[str, ...] = ()
    caveats: Callable[[dict[str, Any], dict[str, Any] | None], list[str]] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown:
            raise ValueError(f"measurement {self.name!r} needs unknown {unknown}; known: {sorted(NEEDS)}")


_REGISTRY: dict[str, Measurement] = {}
_loaded = False


def register(measurement: Measurement) -> Measurement:
    """Add a measurement; its name and every key it fills must be new."""
    if measurement.name in _REGISTRY:
        raise ValueError(f"measurement {measurement.name!r} is already registered")
    taken = {k for m in _REGISTRY.values() for k in m.keys} & set(measurement.keys)
    if taken:
        raise ValueError(f"measurement {measurement.name!r}: report keys {sorted(taken)} are taken")
    _REGISTRY[measurement.name] = measurement
    return measurement


def load() -> None:
    """Import every measurement module (LOKA's, then ``$LOKA_PLUGINS``) once."""
    global _loaded
    if not _loaded:
        _loaded = True
        import_modules(MODULES)


def _position(m: Measurement) -> int:
    module = getattr(m.run, "__module__", "")
    return MODULES.index(module) if module in MODULES else len(MODULES)


def measurements() -> list[Measurement]:
    """Every measurement, in the order they run (LOKA's files in `MODULES` order, then plugins
    in registration order); a measurement may read the values of those before it."""
    load()
    return sorted(_REGISTRY.values(), key=_position)


def columns(group: Group | None = None) -> list[Column]:
    return [c for m in measurements() for c in m.columns if group is None or c.group == group]


def report_keys() -> tuple[str, ...]:
    """Every key a report's JSON has besides model, data, curves, warnings and timing."""
    return tuple(k for m in measurements() for k in m.keys)
