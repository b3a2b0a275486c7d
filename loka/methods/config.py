"""Method settings as frozen, typed, validated, serialisable dataclasses.

Every unlearning method declares one `MethodConfig` subclass. Its fields are the method's
settings: the annotation is the type (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
or any of these ``| None``), the default is the default, and `knob` adds bounds and a help line.
Construction checks everything — unknown names, wrong types, NaN or infinite numbers, bounds,
literal choices — and raises a one-line `SettingsError` before any weight is touched.
`from_settings` also reads the text of a command line (``--set k=64``), so the CLI, the Python
API and the tables all read one definition.

Example:
    >>> @dataclass(frozen=True)
    ... class Demo(MethodConfig):
    ...     lr: float = knob(1e-3, gt=0, help="learning rate")
    ...     mode: Literal["zero", "mean"] = "zero"
    >>> Demo.from_settings({"lr": "3e-4"}, method="demo")
    Demo(lr=0.0003, mode='zero')
    >>> Demo.from_settings({"lr": -1}, method="demo")
    Traceback (most recent call last):
    ...
    loka.methods.config.SettingsError: demo: setting 'lr' must be > 0, got -1
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeVar

from loka.errors import LokaError

T = TypeVar("T", bound="MethodConfig")
_BOUNDS = (("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
           ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b))


class SettingsError(LokaError, ValueError):
    """A method setting that is unknown, of the wrong type, or out of range."""


def knob(default: Any, *, ge: int | float | None = None, gt: int | float | None = None,
         le: int | float | None = None, lt: int | float | None = None, help: str = "") -> Any:
    """A setting's default with its bounds and help line (``dataclasses.field`` underneath)."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "lt": lt, "help": help})


def _allowed(tp: Any) -> tuple[Any, bool]:
    """``(base type, optional)`` of an annotation: ``float | None`` -> ``(float, True)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), len(args) < len(typing.get_args(tp))
    return tp, False


def _type_name(tp: Any) -> str:
    base, optional = _allowed(tp)
    name = ("one of " + ", ".join(map(repr, typing.get_args(base)))
            if typing.get_origin(base) is Literal else getattr(base, "__name__", str(base)))
    return name + (" or null" if optional else "")


def _coerce(text: str, tp: Any) -> Any:
    """A command-line string read as the field's type (JSON numbers, true/false, null)."""
    base, optional = _allowed(tp)
    if optional and text.strip().lower() in ("null", "none"):
        return None
    if base is str or typing.get_origin(base) is Literal:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text  # reported by the type check with the field's name


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's settings; see the module docstring."""

    method_name: ClassVar[str] = "method"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = self._checked(f.name, getattr(self, f.name), hints[f.name], f.metadata)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Checks across settings (a subclass's hook); raise `SettingsError` via `fail`."""

    def fail(self, message: str, method: str | None = None) -> SettingsError:
        return SettingsError(f"{method or type(self).method_name}: {message}")

    def _checked(self, name: str, value: Any, tp: Any, meta: Mapping[str, Any],
                 method: str | None = None) -> Any:
        fail = lambda message: self.fail(message, method)  # noqa: E731
        base, optional = _allowed(tp)
        if value is None:
            if optional:
                return None
            raise fail(f"setting {name!r} must be {_type_name(tp)}, got None")
        if typing.get_origin(base) is Literal:
            if value not in typing.get_args(base):
                raise fail(f"setting {name!r} must be {_type_name(tp)}, got {value!r}")
            return value
        ok = (isinstance(value, bool) if base is bool else
              isinstance(value, int) and not isinstance(value, bool) if base is int else
              isinstance(value, int | float) and not isinstance(value, bool) if base is float else
              isinstance(value, base))
        if not ok:
            raise fail(f"setting {name!r} must be {_type_name(tp)}, got {value!r}")
        if base in (int, float):
            try:
                number = float(value)
            except OverflowError:
                raise fail(f"setting {name!r} is out of range: {str(value)[:24]}") from None
            if not math.isfinite(number):
                raise fail(f"setting {name!r} must be finite, got {value!r}")
            for key, sign, ok_fn in _BOUNDS:
                bound = meta.get(key)
                if bound is not None and not ok_fn(number, bound):
                    raise fail(f"setting {name!r} must be {sign} {bound:g}, got {value!r}")
            return float(value) if base is float else value
        return value

    @classmethod
    def from_settings(cls: type[T], settings: Mapping[str, Any], *, method: str | None = None) -> T:
        """The config with ``settings`` over the defaults; strings are read as the field's type."""
        name = method or cls.method_name
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise SettingsError(f"{name}: unknown setting(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(sorted(known)) or '(none)'}")
        meta = {f.name: f.metadata for f in fields(cls)}
        probe = cls.__new__(cls)  # checks each value (one-line errors) before construction
        values = {}
        for k, v in settings.items():
            v = _coerce(v, hints[k]) if isinstance(v, str) else (
                os.fspath(v) if isinstance(v, os.PathLike) else v)  # a directory setting
            values[k] = probe._checked(k, v, hints[k], meta[k], name)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any, str]]:
        """``(name, type, default, help)`` of every setting, for ``--help`` and the docs."""
        hints = typing.get_type_hints(cls)
        return [(f.name, _type_name(hints[f.name]), f.default, f.metadata.get("help", ""))
                for f in fields(cls)]
