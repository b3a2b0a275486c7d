"""`compare`: run every method on one world, verify each the same way, write one ``results.json``.

Every name is a registered method (`loka.methods.registry`), run through `loka.methods.unlearn`
from the base model — the references too: ``base`` changes nothing, ``retrain`` loads the model
trained without the forget set. A method that fails gets an entry with its ``error`` and null
metrics, so the file always has every requested method. The retrain model's measurements are
computed once and serve as the reference for all; a method whose weights are the base model's
(``changes_weights=False``) or the retrain model's reuses those measurements instead of
measuring the same weights again.

Example:
    >>> results = compare(load_world("tiny"), methods=["base", "retrain", "npo"], out="results.json")  # doctest: +SKIP
    >>> results["methods"]["npo"]["forget_accuracy"]                       # doctest: +SKIP
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from loka.errors import LokaError
from loka.io.atomic import write_json
from loka.methods import get, names, task_from_world, unlearn
from loka.verify.data import VerifyData
from loka.verify.loaded import load_model
from loka.verify.measure import Measurements, VerifySettings
from loka.verify.reference_cache import reuse_reference
from loka.verify.verifier import verify
from loka.workflows.runner import run_guarded, run_parallel


def _same_weights(model: Any, other: Any) -> bool:
    mine, theirs = dict(model.named_parameters()), dict(other.named_parameters())
    return mine.keys() == theirs.keys() and all(
        mine[k].shape == theirs[k].shape and torch.equal(mine[k].detach().cpu(), theirs[k].detach().cpu())
        for k in mine)


def measure_result(result: Any, data: VerifyData, reference: Measurements | None,
                   base: Measurements, vs: VerifySettings) -> dict[str, Any]:
    """The verification entry of one method's result, reusing the measurements of identical
    weights: the ``base`` model's (a method that changes no weight, or one whose run left every
    weight as it was — on SmolLM2 task_vector and counterexample stop at their retain budget
    before their first step) and the retrain ``reference``'s. Every measurement is a
    deterministic function of the weights (and the model's own refusal filter, applied anyway),
    so the shared numbers are the ones a second verification would compute."""
    loaded = load_model((result.model, result.tokenizer), name=result.method,
                        refusal_filter=result.refusal_filter)
    if not get(result.method).changes_weights or _same_weights(result.model, base.model.model):
        model: Any = base.with_weights_of(loaded)
    elif reference is not None and _same_weights(result.model, reference.model.model):
        model = reference.with_weights_of(loaded)
    else:
        model = loaded
    return verify(model, data, retrain=reference, base=base, name=result.method,
                  refusal_filter=result.refusal_filter, seconds=result.seconds,
                  params_changed=result.params_changed, diverged=result.diverged,
                  settings=vs).to_dict()


def method_entry(model: Any, task: Any, name: str, settings: dict[str, Any], data: VerifyData,
                 reference: Measurements | None, base: Measurements, vs: VerifySettings, *,
                 progress: bool, placement: Any = None) -> dict[str, Any]:
    """Run one method on ``model`` and verify what it returned: its results entry."""
    result = unlearn(model, task, method=name, progress=progress, placement=placement, **settings)
    return measure_result(result, data, reference, base, vs)


def references_of(artifacts: Any, vs: VerifySettings) -> tuple[VerifyData, Measurements, Measurements]:
    """The world's verification data, the retrain model's measurements (stored by an earlier run,
    or measured and stored now) and the base model's (measured as they are needed)."""
    data = VerifyData.from_world(artifacts)
    retrain = Measurements(load_model(artifacts.retrain_dir, name="retrain"), data, vs)
    base = Measurements(load_model(artifacts.base_dir, name="base"), data, vs)
    reuse_reference(retrain, base, artifacts)
    return data, retrain, base


def _world_entries(names_: list[str], artifacts: Any, settings: dict[str, dict[str, Any]],
                   vs: VerifySettings, progress: bool, start: Any = None, done: Any = None
                   ) -> dict[str, dict[str, Any]]:
    """Each method's guarded, timed results entry, one after another (in this process)."""
    data, reference, base = references_of(artifacts, vs)
    task = task_from_world(artifacts)
    entries: dict[str, dict[str, Any]] = {}
    for name in names_:
        if start is not None:
            start(name)
        entries[name] = run_guarded(partial(method_entry, artifacts.base_dir, task, name, settings.get(name, {}),
                                            data, reference, base, vs, progress=progress))
        if done is not None:
            done(name)
    return entries


def check_settings(names_: Sequence[str], settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every method named and every setting valid, before anything runs; the settings typed
    (``"3e-4"`` from a command line becomes ``0.0003``)."""
    for name in settings:
        if name not in names_:
            raise LokaError(f"settings given for {name!r}, which is not among the methods run")
    typed: dict[str, dict[str, Any]] = {}
    for name in names_:
        cfg = get(name).config.from_settings(settings.get(name, {}), method=name)
        if name in settings:
            typed[name] = {k: getattr(cfg, k) for k in settings[name]}
    return typed


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}


def compare(artifacts: Any, methods: Sequence[str] | None = None,
            settings: dict[str, dict[str, Any]] | None = None, out: str | Path | None = "results.json",
            *, verify_settings: VerifySettings | None = None, progress: bool = True,
            workers: int | None = None) -> dict[str, Any]:
    """Run and verify ``methods`` (default: the registry's comparison) on ``artifacts``.

    ``settings`` maps a method name to its settings. ``workers`` > 1 runs the methods in that
    many single-threaded processes (default: one per core, at most 4; 1 runs them here).
    Writes ``out`` unless None.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    chosen = list(dict.fromkeys(methods or names(compare_only=True)))
    settings = check_settings(chosen, settings or {})
    vs = verify_settings or VerifySettings()
    workers = min(max(1, min(4, os.cpu_count() or 1)) if workers is None else workers, len(chosen))
    if workers < 1:
        raise LokaError(f"workers must be >= 1, got {workers}")
    if workers > 1:
        entries = run_parallel(chosen, settings, workers, progress, artifacts=artifacts, vs=vs)
    else:
        with tqdm(total=len(chosen), desc="compare", unit="method", disable=not progress) as bar:
            entries = _world_entries(chosen, artifacts, settings, vs, progress,
                                     start=bar.set_postfix_str, done=lambda name: bar.update())
    results = {
        "world": artifacts.info(),
        "methods": entries,
        "verify_settings": vs.to_dict(),
        "compare_seconds": round(time.perf_counter() - t0, 2),
        "workers": workers,
        "machine": machine(),
    }
    if out is not None:
        write_json(out, results)
    if progress:
        from loka.report.terminal import print_results

        print_results(results)
    return results
