"""What a method is given (`UnlearnTask`) and what it gives back (`UnlearnResult`).

A method edits its own copy of the model in place and reports what it did; nothing is saved by
the method. `UnlearnResult.save` writes a new checkpoint with its sealed manifest through the one
save path (`loka.io.checkpoint.save_checkpoint`), and refuses a model whose weights or outputs are
not finite.

>>> result = unlearn("path/to/base", task, method="gradient_ascent", lr=1e-4)    # doctest: +SKIP
>>> result.save("out/ga")                                                       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loka.errors import CheckpointWriteError, LokaError
from loka.io.data import FactRecord


@dataclass(frozen=True)
class UnlearnTask:
    """What to forget and what to keep, as a method may see it.

    ``retain`` is the part of the retain set methods may look at; the verifier keeps its own
    retain-eval part that no method ever sees. ``retrain_dir`` is the model trained without the
    forget data, when one exists (a world's): only the ``retrain`` reference reads it.
    """

    forget: tuple[FactRecord, ...]
    retain: tuple[FactRecord, ...] = ()
    forget_passages: tuple[str, ...] = ()
    retain_passages: tuple[str, ...] = ()
    retrain_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.forget and not self.forget_passages:
            raise LokaError("the forget set is empty: give at least one fact or passage to forget")

    @property
    def forget_subjects(self) -> tuple[str, ...]:
        return tuple(sorted({f.subject for f in self.forget if f.subject}))

    def sha256(self) -> str:
        """Hash of everything a method sees (records and passages), for the manifest."""
        blob = json.dumps([[f.to_json() for f in self.forget], [f.to_json() for f in self.retain],
                           list(self.forget_passages), list(self.retain_passages)], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def check_fits(self, tokenizer: Any, max_len: int | None) -> None:
        """Refuse a fact or passage longer than the model's context, naming it (before any work)."""
        if not max_len:
            return
        texts = ([(f"forget fact {i + 1}", f"{f.prompt} {f.answer}") for i, f in enumerate(self.forget)]
                 + [(f"retain fact {i + 1}", f"{f.prompt} {f.answer}") for i, f in enumerate(self.retain)]
                 + [(f"forget passage {i + 1}", t) for i, t in enumerate(self.forget_passages)]
                 + [(f"retain passage {i + 1}", t) for i, t in enumerate(self.retain_passages)])
        if not texts:
            return
        lengths = tokenizer([t for _, t in texts], add_special_tokens=False)["input_ids"]
        for (label, _), ids in zip(texts, lengths, strict=True):
            if len(ids) + 2 > max_len:  # BOS and the answer's own boundary
                raise LokaError(f"{label} is {len(ids)} tokens long, more than the model's context "
                                f"of {max_len}; shorten it or split it in two")


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
    details: dict[str, Any] = field(default_factory=dict)  # what a method chose (components, ...)
    seed: int | None = None
    task_sha256: str | None = None
    non_finite: str | None = None  # why the edited model must not be used (set by `unlearn`)

    def summary(self) -> dict[str, Any]:
        """JSON-able record (no tensors) for manifests and reports."""
        return {
            "method": self.method, "settings": self.settings, "seconds": round(self.seconds, 3),
            "params_changed": self.params_changed, "steps": self.steps,
            "forward_passes": self.forward_passes, "backward_passes": self.backward_passes,
            "diverged": self.diverged, "diverged_step": self.diverged_step,
            "plan": self.plan, "ranking": self.ranking, "refusal_filter": self.refusal_filter,
            "notes": self.notes, "details": self.details, "seed": self.seed,
            "task_sha256": self.task_sha256, "non_finite": self.non_finite,
        }

    def save(self, out_dir: str | os.PathLike[str], source: str | os.PathLike[str] | None = None, *,
             data_files: list[str | os.PathLike[str]] | tuple[()] = (), world: Any = None) -> Path:
        """Write the edited model as a new checkpoint (never over ``source`` or any model).

        The sealed manifest records the method, this result's `summary` (settings, cost,
        divergence) and the provenance (seed, task hash, ``data_files`` with their sha256,
        ``world``); a refusal filter is written beside the weights.
        """
        from loka.io.checkpoint import save_checkpoint
        from loka.io.provenance import provenance_section

        if self.non_finite:
            raise CheckpointWriteError(f"{self.method}: {self.non_finite}; the model is not saved")
        section = provenance_section(seed=self.seed, data_files=list(data_files), world=world,
                                     task_sha256=self.task_sha256)
        summary = json.loads(json.dumps(self.summary(), default=str))
        return save_checkpoint(self.model, out_dir, method=self.method, source=source,
                               tokenizer=self.tokenizer, plans=[self.plan] if self.plan else [],
                               result=summary, provenance=section, refusal_filter=self.refusal_filter)
