"""Unlearning methods behind one interface: LOKA's localized methods, the baselines, the references.

`unlearn` runs a registered method (`loka.methods.registry`) on a fresh copy of a model: its
settings are validated first (the method's ``Config``), the task is checked against the model's
context, and afterwards every weight and a forward pass on the forget prompts must be finite —
otherwise the result is marked diverged and refuses to be saved.

>>> from loka.methods import unlearn, task_from_world
>>> result = unlearn(art.base_dir, task_from_world(art), method="loka-ft")      # doctest: +SKIP
>>> result.save("out/loka-ft", source=art.base_dir)                            # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loka.io.data import FactRecord
from loka.methods.registry import MethodSpec, get, names, register, specs
from loka.methods.task import UnlearnResult, UnlearnTask

__all__ = ["MethodSpec", "UnlearnResult", "UnlearnTask", "get", "names", "register", "specs",
           "task_from_world", "unlearn"]


def task_from_world(artifacts: Any) -> UnlearnTask:
    """The world's erasure request: forget people's facts and passages; retain-train as the retain set."""
    world = artifacts.world
    as_records = lambda facts: tuple(FactRecord(f.prompt, f.answer, f.subject, f.attribute) for f in facts)  # noqa: E731
    return UnlearnTask(
        forget=as_records(world.facts("forget")),
        retain=as_records(world.facts("retain_train")),
        forget_passages=tuple(p.text for p in world.passages_in("forget")),
        retain_passages=tuple(p.text for p in world.passages_in("retain")),
        retrain_dir=artifacts.retrain_dir,
    )


def _non_finite(result: UnlearnResult, task: UnlearnTask) -> str | None:
    """Why the edited model is unusable (non-finite weights or outputs), or None."""
    from loka.evaluate import outputs_finite
    from loka.io.checkpoint import non_finite_weights

    bad = non_finite_weights(result.model)
    if bad:
        return f"{bad:,} weights are NaN or infinite"
    texts = [f"{f.prompt} {f.answer}" for f in task.forget[:8]] or list(task.forget_passages[:2])
    if not outputs_finite(result.model, result.tokenizer, texts):
        return "the weights are finite but the outputs are not (overflow)"
    return None


def unlearn(model: str | Path | tuple[Any, Any], task: UnlearnTask, method: str, *, seed: int = 0,
            progress: bool = True, device: str = "cpu", placement: Any = None,
            prefix: str | None = None, **settings: Any) -> UnlearnResult:
    """Run ``method`` on a fresh copy of ``model`` (a checkpoint dir / hub name, or ``(hf_model,
    tokenizer)`` whose model is edited in place). The source checkpoint is never modified.

    ``settings`` are the method's (``get(method).config``); unknown or out-of-range ones are an
    error before the model is loaded. ``placement`` (`loka.io.placement.Placement`) dispatches a
    large model across devices. ``prefix`` (`attribution.data.PREFIXES`) is what goes before every
    text the method trains on; it is recorded on the tokenizer, so the saved model keeps it (None:
    the tokenizer's own, by default its BOS).
    """
    import torch

    from attribution.data import PREFIXES, with_prefix
    from loka.errors import LokaError
    from loka.io.models import load_hf

    spec = get(method)
    cfg = spec.config.from_settings(settings, method=method)
    if not 0 <= seed < 2**63:
        raise LokaError(f"seed must be an integer in [0, 2**63), got {seed}")
    if prefix is not None and prefix not in PREFIXES:
        raise LokaError(f"unknown prefix {prefix!r}: use one of {', '.join(PREFIXES)}")
    hf_model, tokenizer = load_hf(model, device, placement) if isinstance(model, str | Path) else model
    if prefix is not None:  # a copy: a caller's own tokenizer keeps its prefix (the result carries the copy)
        tokenizer = with_prefix(tokenizer, prefix)
    task.check_fits(tokenizer, getattr(hf_model.config, "max_position_embeddings", None))
    torch.manual_seed(seed)
    result = spec.run(hf_model, tokenizer, task, cfg, seed=seed, progress=progress)
    result.seed, result.task_sha256 = seed, task.sha256()
    result.non_finite = _non_finite(result, task)
    if result.non_finite:
        result.diverged = True
        result.notes.append(f"the edited model is unusable: {result.non_finite}; it will not be saved")
    return result
