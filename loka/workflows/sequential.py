"""Sequential erasure requests (MUSE's "sustainability"): forget people batch after batch.

The world's forget people are split into ``k`` request batches (in world order). Each method
starts from the world's ``base`` model and handles the requests one after another: step ``i``
edits the model step ``i - 1`` left, seeing only batch ``i`` as its forget set (facts, training
templates) and the retain-train facts as its retain set. After every step (and at step 0, the
untouched base) first-token accuracy is measured on *every* batch — requested ones, which must
stay forgotten, and not-yet-requested ones (collateral) — and on the retain-eval facts, which
no method ever sees.

A method *decays* when a batch forgotten earlier comes back (its accuracy at any later step is
more than ``tolerance`` above its accuracy right after its own request) or when retain-eval
accuracy at the last step is more than ``tolerance`` below the base model's.

Example:
    >>> art = load_world("tiny")                                              # doctest: +SKIP
    >>> res = run_sequential(art, ["gradient_ascent"], n_batches=4)           # doctest: +SKIP
    >>> res.methods["gradient_ascent"].steps[-1].forget_accuracy              # doctest: +SKIP
    [0.05, 0.1, 0.0, 0.05]
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from loka.errors import LokaError
from loka.io.data import FactRecord

DEFAULT_BATCHES = {"tiny": 4, "default": 5}


@dataclass(frozen=True)
class StepRecord:
    """Accuracies after request ``step`` (0: before any request); one forget entry per batch."""

    step: int
    forget_accuracy: list[float]
    retain_eval_accuracy: float
    seconds: float = 0.0
    diverged: bool = False
    params_changed: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class MethodRun:
    """One method's run over all requests, and its decay summary."""

    method: str
    settings: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)

    def decay(self, tolerance: float = 0.1) -> dict[str, Any]:
        """How far earlier-forgotten batches came back, and how far retain-eval fell."""
        k, last = len(self.steps) - 1, self.steps[-1]
        # Peak, not final: a batch that came back at step 3 and sank again still came back.
        rebound = [round(max(s.forget_accuracy[j] for s in self.steps[j + 1:])
                         - self.steps[j + 1].forget_accuracy[j], 4) for j in range(k)]
        retain_drop = round(self.steps[0].retain_eval_accuracy - last.retain_eval_accuracy, 4)
        worst = max(rebound[:-1], default=0.0)
        return {"rebound": rebound, "max_rebound": worst, "retain_drop": retain_drop,
                "decays": worst > tolerance or retain_drop > tolerance,
                "reason": ", ".join(r for r, bad in (
                    (f"earlier batches came back (+{worst:.2f})", worst > tolerance),
                    (f"retain-eval fell {retain_drop:.2f}", retain_drop > tolerance)) if bad)
                or "stable"}

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "settings": self.settings,
                "steps": [asdict(s) for s in self.steps], "decay": self.decay()}


@dataclass
class SequentialResult:
    """Every method's run; ``batches`` lists each request's subjects."""

    preset: str
    batches: list[list[str]]
    seed: int
    methods: dict[str, MethodRun] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "seed": self.seed, "batches": self.batches,
                "methods": {m: r.to_dict() for m, r in self.methods.items()}}


def request_batches(subjects: Sequence[str], n_batches: int) -> list[list[str]]:
    """Split ``subjects`` (in order) into ``n_batches`` contiguous, near-equal batches."""
    if not 1 <= n_batches <= len(subjects):
        raise LokaError(f"--batches must be between 1 and {len(subjects)} (the forget people), "
                        f"got {n_batches}")
    size, extra = divmod(len(subjects), n_batches)
    out, at = [], 0
    for i in range(n_batches):
        n = size + (i < extra)
        out.append(list(subjects[at: at + n]))
        at += n
    return out


def _records(facts: Sequence[Any]) -> tuple[FactRecord, ...]:
    return tuple(FactRecord(f.prompt, f.answer, f.subject, f.attribute) for f in facts)


def _measure(model: Any, tok: Any, batch_facts: list[tuple[FactRecord, ...]],
             retain_eval: tuple[FactRecord, ...]) -> tuple[list[float], float]:
    from loka.evaluate import first_token_accuracy

    forget = [round(first_token_accuracy(model, tok, facts), 4) for facts in batch_facts]
    return forget, round(first_token_accuracy(model, tok, retain_eval), 4)


def run_method(model_dir: Any, method: str, batch_facts: list[tuple[FactRecord, ...]],
               retain: tuple[FactRecord, ...], retain_eval: tuple[FactRecord, ...], *,
               settings: Mapping[str, Any] | None = None, seed: int = 0,
               progress: bool = False) -> MethodRun:
    """Apply ``method`` to each batch in turn, on one model, measuring after every step."""
    from loka.io.models import load_hf
    from loka.methods import UnlearnTask, unlearn

    model, tok = load_hf(model_dir)
    run = MethodRun(method, dict(settings or {}))
    forget, kept = _measure(model, tok, batch_facts, retain_eval)
    run.steps.append(StepRecord(0, forget, kept))
    for i, facts in enumerate(batch_facts, start=1):
        t0 = time.perf_counter()
        result = unlearn((model, tok), UnlearnTask(forget=facts, retain=retain), method, seed=seed,
                         progress=progress, **run.settings)
        forget, kept = _measure(model, tok, batch_facts, retain_eval)
        run.steps.append(StepRecord(i, forget, kept, round(time.perf_counter() - t0, 2),
                                    result.diverged, result.params_changed, list(result.notes)))
    return run


def run_sequential(artifacts: Any, methods: Sequence[str], n_batches: int | None = None, *,
                   settings: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0,
                   progress: bool = False) -> SequentialResult:
    """Run every method over ``n_batches`` requests (default: 4 on tiny, 5 otherwise)."""
    world = artifacts.world
    preset = artifacts.spec.preset
    subjects = [p.name for p in world.people_in("forget")]
    batches = request_batches(subjects, n_batches or DEFAULT_BATCHES.get(preset, 5))
    facts = world.facts("forget")
    batch_facts = [_records([f for f in facts if f.subject in set(b)]) for b in batches]
    retain, retain_eval = _records(world.facts("retain_train")), _records(world.facts("retain_eval"))
    out = SequentialResult(preset, batches, seed)
    for method in methods:
        out.methods[method] = run_method(artifacts.base_dir, method, batch_facts, retain,
                                         retain_eval, settings=(settings or {}).get(method),
                                         seed=seed, progress=progress)
    return out
