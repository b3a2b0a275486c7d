"""Settings of the optimisation-based methods: one validated `TrainConfig` plus method extras.

Everything is checked before any weight is touched: unknown names, NaN or infinite numbers,
non-positive learning rates, epochs, steps and batch sizes, and each method's own ranges.

>>> cfg, extra = parse_settings("gradient_ascent", {"lr": 1e-4}, {"alpha": 0.5},
...                             {"alpha": unit_interval})
>>> cfg.lr, extra["alpha"]
(0.0001, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from loka.errors import LokaError

Check = Callable[[str, Any], None]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LokaError(f"setting {name!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise LokaError(f"setting {name!r} must be finite, got {value!r}")
    return float(value)


def positive(name: str, value: Any) -> None:
    if _number(name, value) <= 0:
        raise LokaError(f"setting {name!r} must be > 0, got {value!r}")


def non_negative(name: str, value: Any) -> None:
    if _number(name, value) < 0:
        raise LokaError(f"setting {name!r} must be >= 0, got {value!r}")


def unit_interval(name: str, value: Any) -> None:
    if not 0.0 <= _number(name, value) <= 1.0:
        raise LokaError(f"setting {name!r} must lie in [0, 1], got {value!r}")


def any_number(name: str, value: Any) -> None:
    _number(name, value)


def positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LokaError(f"setting {name!r} must be a positive integer, got {value!r}")


def _optional(check: Check) -> Check:
    return lambda name, value: None if value is None else check(name, value)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop's settings (shared by every optimisation method).

    ``steps`` (when set) replaces ``epochs``; an epoch is one pass over the forget set in
    minibatches of ``batch_size``. ``forget_target``: stop once first-token accuracy on the forget
    facts is at or below it, checked every ``eval_every`` steps. ``max_forget_nll``: a mean forget
    NLL above this many nats per token counts as collapse and trips the divergence guard.
    """

    lr: float = 1e-4
    epochs: int = 3
    steps: int | None = None
    batch_size: int = 32
    weight_decay: float = 0.01
    max_grad_norm: float | None = None
    forget_target: float | None = None
    eval_every: int = 5
    max_forget_nll: float = 50.0
    snapshot_every: int = 1

    def __post_init__(self) -> None:
        for name, check in _CHECKS.items():
            check(name, getattr(self, name))

    def total_steps(self, n_forget: int) -> int:
        """``steps``, or ``epochs`` passes over ``n_forget`` items."""
        return self.steps if self.steps is not None else self.epochs * math.ceil(n_forget / self.batch_size)


TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))
_CHECKS: dict[str, Check] = {
    "lr": positive, "epochs": positive_int, "steps": _optional(positive_int),
    "batch_size": positive_int, "weight_decay": non_negative,
    "max_grad_norm": _optional(positive), "forget_target": _optional(unit_interval),
    "eval_every": positive_int, "max_forget_nll": positive, "snapshot_every": positive_int,
}
_FLOATS = ("lr", "weight_decay", "max_grad_norm", "forget_target", "max_forget_nll")


def parse_settings(method: str, settings: Mapping[str, Any], defaults: Mapping[str, Any],
                   extras: Mapping[str, Check]) -> tuple[TrainConfig, dict[str, Any]]:
    """Merge ``settings`` over ``defaults``; validate; return the loop config and the extras.

    ``extras`` maps each method-specific setting to its check; its default must be in ``defaults``.
    """
    merged = {**defaults, **settings}
    allowed = set(TRAIN_FIELDS) | set(extras)
    unknown = sorted(set(merged) - allowed)
    if unknown:
        raise LokaError(f"{method}: unknown setting(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(sorted(allowed))}")
    for name, check in extras.items():
        if name not in merged:
            raise LokaError(f"{method}: setting {name!r} has no default; pass it explicitly")
        check(name, merged[name])
    train = {k: v for k, v in merged.items() if k in TRAIN_FIELDS}
    for name, value in train.items():
        _CHECKS[name](name, value)  # before construction: a clear LokaError, not a type error
    cfg = TrainConfig(**{k: float(v) if k in _FLOATS and v is not None else v for k, v in train.items()})
    return cfg, {k: merged[k] for k in extras}


def resolved(cfg: TrainConfig, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting the run used (defaults filled in), for the result and its manifest."""
    return {**asdict(cfg), **extra}
