"""The one interface every unlearning method implements, LOKA's and the baselines alike.

A method is a function ``(model, tokenizer, task, settings) -> UnlearnResult`` registered under a
name. It receives its own copy of the model (the caller loaded it fresh from the source
checkpoint), edits it in place, and reports what it did. Nothing is saved by the method:
`UnlearnResult.save` writes a new checkpoint with its manifest through the ablation engine.

>>> result = unlearn("path/to/base", task, method="gradient_ascent", lr=1e-4)    # doctest: +SKIP
>>> result.save("out/ga")                                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loka.data import FactRecord
from loka.errors import LokaError


@dataclass(frozen=True)
class UnlearnTask:
    """What to forget and what to keep, as a method may see it.

    ``retain`` is the part of the retain set methods may look at; the verifier keeps its own
    retain-eval part that no method ever sees.
    """

    forget: tuple[FactRecord, ...]
    retain: tuple[FactRecord, ...] = ()
    forget_passages: tuple[str, ...] = ()
    retain_passages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.forget and not self.forget_passages:
            raise LokaError("the forget set is empty: give at least one fact or passage to forget")

    @property
    def forget_subjects(self) -> tuple[str, ...]:
        return tuple(sorted({f.subject for f in self.forget if f.subject}))


@dataclass
class UnlearnResult:
    """An edited model and the record of how it was made."""

    method: str
    model: Any  # the edited Hugging Face model (the caller's copy, edited in place)
    tokenizer: Any
    settings: dict[str, Any]
    seconds: float
    params_changed: int
    steps: int = 0
    forward_passes: int = 0
    backward_passes: int = 0
    diverged: bool = False
    diverged_step: int | None = None
    log: list[dict[str, Any]] = field(default_factory=list)  # per step: step, loss, forget_loss, ...
    plan: dict[str, Any] | None = None  # the AblationPlan JSON, for plan-based methods
    ranking: dict[str, Any] | None = None  # ranking provenance (method, data hash, seconds)
    refusal_filter: dict[str, Any] | None = None  # output_suppression only
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able record (no tensors) for manifests and reports."""
        return {
            "method": self.method, "settings": self.settings, "seconds": round(self.seconds, 3),
            "params_changed": self.params_changed, "steps": self.steps,
            "forward_passes": self.forward_passes, "backward_passes": self.backward_passes,
            "diverged": self.diverged, "diverged_step": self.diverged_step,
            "plan": self.plan, "ranking": self.ranking, "refusal_filter": self.refusal_filter,
            "notes": self.notes,
        }

    def save(self, out_dir: str | os.PathLike[str], source: str | os.PathLike[str] | None = None, *,
             metrics: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
        """Write the edited model as a new checkpoint (never over ``source``) with its manifest.

        The manifest (``loka_manifest.json``) gains ``method`` and ``result`` (this result's
        `summary`: settings, cost, divergence); a refusal filter is written beside the weights as
        ``loka_refusal_filter.json``.
        """
        from loka.engine.save import MANIFEST, save_checkpoint

        path = save_checkpoint(self.model, out_dir, source=source, metrics=metrics,
                               tokenizer=self.tokenizer, overwrite=overwrite)
        manifest = json.loads((path / MANIFEST).read_text())
        manifest.update(method=self.method, result=self.summary())
        _write_json(path / MANIFEST, manifest)
        if self.refusal_filter is not None:
            _write_json(path / "loka_refusal_filter.json", self.refusal_filter)
        return path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


MethodFn = Callable[..., UnlearnResult]
_REGISTRY: dict[str, MethodFn] = {}


def register(name: str) -> Callable[[MethodFn], MethodFn]:
    """Register an unlearning method under ``name``; a second registration of a name is an error."""

    def deco(fn: MethodFn) -> MethodFn:
        if name in _REGISTRY:
            raise ValueError(f"unlearning method {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def get_method(name: str) -> MethodFn:
    if name not in _REGISTRY:
        raise LokaError(f"unknown method {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def method_names() -> list[str]:
    return sorted(_REGISTRY)
