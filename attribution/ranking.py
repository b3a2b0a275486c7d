"""`Ranking`: every method's answer — per-component forget and retain effects, and their contrast.

Effects are signed so that larger means the component matters more for that set (for patching:
the drop of the metric when the component is ablated). The contrast ranks what to remove:

- ``difference`` (patching, attribution patching, integrated gradients)::

      contrast = forget - weight * max(retain, 0)

  Both effects are in the metric's own units (nats of log-probability), so their difference
  means "log-prob removed from the forget set, minus log-prob removed from the retain set".
  Only retain *damage* is charged: a component whose ablation happens to help the retain set
  is no reason to remove it, so a negative retain effect is clamped to 0 rather than rewarded.
  ``weight = 0`` ranks by forget effect alone; larger weights protect the retain set more.
- ``ratio`` (activation statistics, selective pruning)::

      contrast = forget / (retain + eps) ** weight

  Pochinkov & Schoots's score is ``weight = 1``; ``weight = 0`` again ranks by forget alone.

Example:
    >>> ranking.top(50, kinds=("head",))  # doctest: +SKIP
    >>> Ranking.from_json(ranking.rerank(2.0).to_json()).weight  # doctest: +SKIP
    2.0
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from attribution.components import KINDS, Component, ComponentKind

ContrastFormula = Literal["difference", "ratio"]
FORMULAS: tuple[ContrastFormula, ...] = ("difference", "ratio")
FORMAT = "loka.attribution.ranking"
VERSION = 1
MAX_FILE_BYTES = 256 * 1024 * 1024  # a ranking of a 70B model is ~100 MB; anything larger is not one
_STR_FIELDS = ("formula", "method", "model_id", "forget_hash", "retain_hash", "forget_metric",
               "retain_metric")


def _finite(x: Any) -> bool:
    """A JSON number (not a bool) that is finite as a float."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def contrast(forget: Float[Tensor, " n"], retain: Float[Tensor, " n"], formula: ContrastFormula,
             weight: float, eps: float) -> Float[Tensor, " n"]:
    """The contrast score of each component (formulas in the module docstring)."""
    if formula == "difference":
        return forget - weight * retain.clamp(min=0)
    return forget / (retain + eps) ** weight


@dataclass(frozen=True, eq=False)
class Ranking:
    """Per-component scores from one attribution method, with their provenance."""

    components: tuple[Component, ...]
    forget_scores: Float[Tensor, " n"]
    retain_scores: Float[Tensor, " n"]
    formula: ContrastFormula
    weight: float
    method: str
    ablation: str | None
    model_id: str
    forget_hash: str
    retain_hash: str
    forget_metric: str
    retain_metric: str
    seconds: float
    forward_passes: int
    backward_passes: int
    eps: float = 1e-6
    options: dict[str, Any] = field(default_factory=dict)
    contrast_scores: Float[Tensor, " n"] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.components)
        if n == 0:
            raise ValueError("a ranking needs at least one component")
        if len(set(self.components)) != n:
            raise ValueError("a ranking lists each component once; found duplicates")
        for name in ("forget_scores", "retain_scores"):
            scores = getattr(self, name)
            if scores.shape != (n,):
                raise ValueError(f"{name} has shape {tuple(scores.shape)}, expected ({n},)")
            if not torch.isfinite(scores).all():
                raise ValueError(f"{name} contains NaN or infinity; the attribution run diverged")
        if self.formula not in FORMULAS:
            raise ValueError(f"contrast formula must be one of {FORMULAS}, got {self.formula!r}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"contrast weight must be a finite number >= 0, got {self.weight}")
        value = contrast(self.forget_scores, self.retain_scores, self.formula, self.weight, self.eps)
        object.__setattr__(self, "contrast_scores", value)

    def __len__(self) -> int:
        return len(self.components)

    def rerank(self, weight: float) -> Ranking:
        """The same scores contrasted with another ``weight``."""
        return replace(self, weight=float(weight))

    def of_kinds(self, kinds: tuple[ComponentKind, ...]) -> Ranking:
        """The same ranking restricted to components of ``kinds`` (their scores and order kept)."""
        keep = [i for i, c in enumerate(self.components) if c.kind in kinds]
        if len(keep) == len(self.components):
            return self
        index = torch.tensor(keep, dtype=torch.long)
        return replace(self, components=tuple(self.components[i] for i in keep),
                       forget_scores=self.forget_scores[index], retain_scores=self.retain_scores[index])

    def top(self, k: int, kinds: tuple[ComponentKind, ...] | None = None) -> list[Component]:
        """The ``k`` components with the largest contrast, optionally of the given kinds only.

        Ties keep the ranking's component order (the sort is stable).
        """
        kinds = KINDS if kinds is None else kinds
        keep = torch.tensor([c.kind in kinds for c in self.components])
        order = torch.sort(self.contrast_scores, descending=True, stable=True).indices
        return [self.components[i] for i in order.tolist() if keep[i]][: max(k, 0)]

    def scores(self, which: Literal["forget", "retain", "contrast"] = "contrast") -> Float[Tensor, " n"]:
        return {"forget": self.forget_scores, "retain": self.retain_scores,
                "contrast": self.contrast_scores}[which]

    def grid(self, kind: ComponentKind, which: Literal["forget", "retain", "contrast"] = "contrast",
             ) -> Float[Tensor, "n_layers units"]:
        """Scores of one kind laid out ``[layer, index]`` (NaN where a component is absent)."""
        picked = [(c, float(s)) for c, s in zip(self.components, self.scores(which), strict=True)
                  if c.kind == kind]
        if not picked:
            raise ValueError(f"this ranking has no {kind} components")
        out = torch.full((max(c.layer for c, _ in picked) + 1, max(c.index for c, _ in picked) + 1),
                         float("nan"))
        for c, s in picked:
            out[c.layer, c.index] = s
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ranking (contrast included, for readers) as plain JSON data."""
        data: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "components":
                value = [str(c) for c in value]
            elif isinstance(value, Tensor):
                value = value.tolist()
            data[f.name] = value
        return data

    def to_json(self) -> str:
        """`to_dict` as JSON text (as `AblationPlan.to_json`); writing it is the caller's."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def load(cls, path: str | Path) -> Ranking:
        """Read a ranking file; ``ValueError`` (``FileNotFoundError``) naming what is wrong."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"{path} is over the {MAX_FILE_BYTES}-byte limit for a ranking file")
            if not path.is_file():
                raise ValueError(f"{path} is not a regular file")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"no ranking file at {path}") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {type(err).__name__}") from None
        return cls.from_json(text, source=str(path))

    @classmethod
    def from_json(cls, text: str, source: str = "ranking") -> Ranking:
        """Parse `to_json` output; ``ValueError`` naming what is wrong otherwise."""
        try:
            data = json.loads(text)
        except RecursionError as err:  # e.g. 100k nested brackets
            raise ValueError(f"{source} is not valid JSON: {type(err).__name__}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{source} is not valid JSON: {err}") from None
        except ValueError as err:  # an over-long integer
            raise ValueError(f"{source} is not valid JSON: {type(err).__name__}") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: Any, source: str = "ranking") -> Ranking:
        """Build a ranking from `to_dict` data, checking every field."""
        path = source
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a ranking file (expected format {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"{path}: ranking version {data.get('version')!r}, expected {VERSION}")
        wanted = {f.name for f in fields(cls) if f.init}
        missing = wanted - {k for k in data if k in wanted} - {"eps", "options"}
        if missing:
            raise ValueError(f"{path}: ranking file lacks {sorted(missing)}")
        kwargs = {k: data[k] for k in wanted if k in data}
        wrong = [k for k in _STR_FIELDS if not isinstance(kwargs[k], str)]
        wrong += [k for k in ("components", "forget_scores", "retain_scores")
                  if not isinstance(kwargs[k], list)]
        wrong += [k for k in ("forward_passes", "backward_passes")
                  if not isinstance(kwargs[k], int) or isinstance(kwargs[k], bool)]
        wrong += [k for k in ("weight", "seconds", "eps") if k in kwargs and not _finite(kwargs[k])]
        wrong += [k for k in ("forget_scores", "retain_scores")
                  if isinstance(kwargs[k], list) and not all(map(_finite, kwargs[k]))]
        wrong += [k for k in ("ablation",) if kwargs[k] is not None and not isinstance(kwargs[k], str)]
        wrong += [k for k in ("options",) if k in kwargs and not isinstance(kwargs[k], dict)]
        if wrong:
            raise ValueError(f"{path}: malformed ranking: wrong type for {sorted(wrong)}")
        try:
            kwargs["components"] = tuple(Component.parse(c) for c in kwargs["components"])
            for name in ("forget_scores", "retain_scores"):
                if len(kwargs[name]) != len(kwargs["components"]):
                    raise ValueError(f"{name} has {len(kwargs[name])} entries for "
                                     f"{len(kwargs['components'])} components")
                kwargs[name] = torch.tensor([float(x) for x in kwargs[name]], dtype=torch.float32)
            for name in ("weight", "seconds", "eps"):
                if name in kwargs:
                    kwargs[name] = float(kwargs[name])
            ranking = cls(**kwargs)
        except (TypeError, ValueError, AttributeError, OverflowError) as err:
            raise ValueError(f"{path}: malformed ranking: {err}") from None
        return ranking

    def summary(self) -> dict[str, Any]:
        """Provenance without the per-component arrays (for reports and logs)."""
        skip = {"components", "forget_scores", "retain_scores", "contrast_scores"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        return out | {"n_components": len(self)}
