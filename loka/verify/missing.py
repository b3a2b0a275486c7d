"""`Missing`: the one way a metric says "no value here, and this is why".

Every metric returns plain floats, numpy arrays or dicts. Where a value cannot be computed (no
retrain model, a diverged model's non-finite scores, a zero denominator) it returns
``Missing(reason)`` instead of ``None``, ``inf`` or ``NaN``; functions that take a metric value pass
a ``Missing`` through unchanged. `jsonable` turns results into JSON: a ``Missing`` becomes ``null``
and, inside a dict, its reason goes to a sibling key ``"<key>_reason"``.

Example:
    >>> jsonable({"privleak": Missing("no retrain model"), "auc": np.float64(0.75)})
    {'privleak': None, 'privleak_reason': 'no retrain model', 'auc': 0.75}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Missing:
    """A metric that could not be computed; ``reason`` says why, for the report."""

    reason: str


def finite_or_missing(value: float, what: str) -> float | Missing:
    """``float(value)`` if finite, else ``Missing`` naming ``what`` was not finite."""
    value = float(value)
    if math.isfinite(value):
        return value
    return Missing(f"{what} is not finite ({value}); the model's outputs may have diverged")


def numbers(entry: dict[str, Any], *keys: str) -> tuple[float, ...] | None:
    """The values of ``keys`` in a results entry, or None unless every one is a number.

    Example:
        >>> numbers({"a": 0.5, "b": 1.0}, "a", "b"), numbers({"a": 0.5, "b": None}, "a", "b")
        ((0.5, 1.0), None)
    """
    values = [entry.get(k) for k in keys]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return tuple(float(v) for v in values)  # type: ignore[arg-type]
    return None


def jsonable(obj: Any) -> Any:
    """Convert a metric result (dicts, lists, numpy values, `Missing`) to plain JSON values.

    Raises ``ValueError`` on a non-finite float: a NaN must become a ``Missing`` where it arises,
    never reach a report silently.
    """
    if isinstance(obj, Missing):
        return None
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out[str(key)] = jsonable(value)
            if isinstance(value, Missing):
                out[f"{key}_reason"] = value.reason
        return out
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite value {obj} in a metric result; return Missing(reason)")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    raise TypeError(f"cannot make {type(obj).__name__} JSON-serialisable")
