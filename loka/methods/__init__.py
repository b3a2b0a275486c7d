"""Unlearning methods behind one interface: LOKA's localized methods and the standard baselines.

>>> from loka.methods import unlearn, task_from_world
>>> result = unlearn(art.base_dir, task_from_world(art), method="loka-ft")      # doctest: +SKIP
>>> result.save("out/loka-ft", source=art.base_dir)                            # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from loka.data import FactRecord
from loka.methods.base import UnlearnResult, UnlearnTask, get_method, method_names, register

# Method modules register themselves on import; one line per module.
_METHOD_MODULES: tuple[str, ...] = ("loka.methods.localized",
                                   "loka.methods.baselines")

__all__ = ["UnlearnResult", "UnlearnTask", "get_method", "method_names", "register", "task_from_world",
           "unlearn"]


def _load_registry() -> None:
    import importlib

    for name in _METHOD_MODULES:
        importlib.import_module(name)


def task_from_world(artifacts: Any) -> UnlearnTask:
    """The world's erasure request: forget people's facts and passages; retain-train as the retain set."""
    world = artifacts.world
    as_records = lambda facts: tuple(FactRecord(f.prompt, f.answer, f.subject, f.attribute) for f in facts)  # noqa: E731
    return UnlearnTask(
        forget=as_records(world.facts("forget")),
        retain=as_records(world.facts("retain_train")),
        forget_passages=tuple(p.text for p in world.passages_in("forget")),
        retain_passages=tuple(p.text for p in world.passages_in("retain")),
    )


def unlearn(model: str | Path | tuple[Any, Any], task: UnlearnTask, method: str, *, seed: int = 0,
            progress: bool = True, device: str = "cpu", **settings: Any) -> UnlearnResult:
    """Run ``method`` on a fresh copy of ``model`` (a checkpoint dir / hub name, or ``(hf_model,
    tokenizer)`` which is edited in place). The source checkpoint is never modified."""
    import torch

    from loka.models import load_hf

    _load_registry()
    fn = get_method(method)
    hf_model, tokenizer = load_hf(model, device) if isinstance(model, str | Path) else model
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    result = fn(hf_model, tokenizer, task, seed=seed, progress=progress, **settings)
    if not result.seconds:
        result.seconds = time.perf_counter() - t0
    return result
