"""`compare`: run every method on one world, verify each the same way, write one ``results.json``.

``base`` is the unedited model, ``retrain`` the retrain checkpoint (its ``seconds`` is its
training time); every other name is run through `loka.methods.unlearn` from the base model. A
method that is not registered, or fails, gets an entry with its ``error`` and null metrics, so the
file always has every requested method. The retrain model's measurements are computed once and
serve as the reference for all.

Example:
    >>> results = compare(load_world("tiny"), methods=["base", "retrain", "npo"], out="results.json")
    >>> results["methods"]["npo"]["forget_accuracy"]                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loka.errors import LokaError
from loka.verify.data import VerifyData
from loka.verify.loaded import load_model
from loka.verify.measure import Measurements, VerifySettings
from loka.verify.reference_cache import reuse_reference
from loka.verify.verifier import VerifyReport, verify

DEFAULT_METHODS: tuple[str, ...] = (
    "base", "retrain", "loka", "loka-ft", "gradient_ascent", "grad_diff", "npo", "task_vector",
    "counterexample", "output_suppression",
)
REQUIRED_KEYS: tuple[str, ...] = (
    "forget_accuracy", "retain_accuracy", "holdout_accuracy", "heldout_template_forget_accuracy",
    "mia_auc", "privleak", "forget_quality", "probe_accuracy", "relearn_accuracy", "extraction",
    "perplexity", "seconds", "params_changed", "grades", "diverged",
)


def _failed(error: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"error": error}
    for key in REQUIRED_KEYS:
        entry[key] = False if key == "diverged" else None
        if key != "diverged":
            entry[f"{key}_reason"] = f"method did not run: {error}"
    return entry


def _run_method(name: str, artifacts: Any, data: VerifyData, retrain: Measurements,
                settings: dict[str, Any], vs: VerifySettings, progress: bool,
                shared: dict[str, Measurements]) -> VerifyReport:
    """Run and verify one method. ``shared["base"]`` keeps the base model's measurements, which a
    method that changed no weight (output suppression) reuses instead of measuring them again."""
    if name == "base":
        shared["base"] = Measurements(load_model(artifacts.base_dir, name="base"), data, vs)
        return verify(shared["base"], data, retrain=retrain, name="base", seconds=0.0,
                      params_changed=0, settings=vs)
    if name == "retrain":
        n_params = sum(p.numel() for p in retrain.model.model.parameters())
        return verify(retrain, data, retrain=retrain, seconds=data.retrain_seconds,
                      params_changed=n_params, settings=vs)
    from loka.methods import task_from_world, unlearn

    result = unlearn(artifacts.base_dir, task_from_world(artifacts), method=name,
                     progress=progress, **settings)
    model: Any = (result.model, result.tokenizer)
    if result.params_changed == 0 and "base" in shared:  # bit-identical to base (counted against it)
        model = shared["base"].with_weights_of(load_model(model, name=name,
                                                          refusal_filter=result.refusal_filter))
    return verify(model, data, retrain=retrain, name=name,
                  refusal_filter=result.refusal_filter, seconds=result.seconds,
                  params_changed=result.params_changed, diverged=result.diverged, settings=vs)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically; NaN or infinity anywhere is an error, never a silent token."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=2, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, target)
    return target



def run_guarded(run: Any) -> dict[str, Any]:
    """``run()``'s results entry, timed; a failure becomes an entry with the error (and, for an
    unexpected one, a traceback) so one broken method never loses the others' results."""
    started = time.perf_counter()
    try:
        entry = run()
    except LokaError as exc:
        entry = _failed(str(exc))
    except Exception as exc:
        entry = _failed(f"{type(exc).__name__}: {exc}")
        entry["traceback"] = traceback.format_exc(limit=8)
    entry["wall_seconds"] = round(time.perf_counter() - started, 2)
    return entry

# Methods that take longest go first, so that parallel workers finish together (measured on the
# default world with their verification: loka ~90 s, grad_diff ~65 s, npo ~50 s, loka-ft ~20 s).
COST_ORDER: tuple[str, ...] = ("loka", "loka-mask", "grad_diff", "npo", "gradient_ascent",
                               "task_vector", "counterexample", "loka-ft", "base",
                               "output_suppression", "retrain")


def default_workers() -> int:
    """One worker per core (at most 4): each runs single-threaded, which measured fastest here."""
    return max(1, min(4, os.cpu_count() or 1))


_WORKER: dict[str, Any] = {}
# Run in one task, in this order, so the second can reuse the first's measurements (`_run_method`).
_TOGETHER = ("base", "output_suppression")


def _reference(artifacts: Any, vs: VerifySettings) -> tuple[VerifyData, Measurements]:
    """The world's verification data and the retrain model's measurements (the reference's
    stored by an earlier run, or measured and stored now)."""
    data = VerifyData.from_world(artifacts)
    retrain = Measurements(load_model(artifacts.retrain_dir, name="retrain"), data, vs)
    reuse_reference(retrain, artifacts)
    return data, retrain


def _entries(names: list[str], artifacts: Any, data: VerifyData, retrain: Measurements,
             settings: dict[str, dict[str, Any]], vs: VerifySettings, progress: bool,
             start: Any = lambda name: None, done: Any = lambda name: None) -> dict[str, dict[str, Any]]:
    """Each method's guarded, timed results entry, one after another; ``start(name)`` and
    ``done(name)`` around each (a progress bar)."""
    entries: dict[str, dict[str, Any]] = {}
    shared: dict[str, Measurements] = {}
    for name in names:
        start(name)
        entries[name] = run_guarded(lambda name=name: _run_method(
            name, artifacts, data, retrain, settings.get(name, {}), vs, progress, shared).to_dict())
        done(name)
    return entries


def _init_worker(artifacts: Any, vs: VerifySettings) -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)  # two processes x two threads on two cores ran 5-10x slower
    data, retrain = _reference(artifacts, vs)
    _WORKER.update(artifacts=artifacts, data=data, vs=vs, retrain=retrain)


def _worker_entries(names: list[str], settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    w = _WORKER
    return _entries(names, w["artifacts"], w["data"], w["retrain"], settings, w["vs"], False)


def _results(future: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """A worker's entries (timed there); a worker that died gives its methods an error entry."""
    try:
        return future.result()
    except Exception as exc:  # BrokenProcessPool when a worker was killed
        error = f"the worker process failed: {type(exc).__name__}: {exc}"
        return {name: _failed(error) | {"wall_seconds": 0.0} for name in names}


def _compare_parallel(artifacts: Any, names: list[str], settings: dict[str, dict[str, Any]],
                      vs: VerifySettings, workers: int, progress: bool) -> dict[str, Any]:
    """Every method in its own task on ``workers`` single-threaded processes. Every method and
    measurement is seeded and the verifier runs at one thread either way; a method's own
    optimisation runs at one thread here and at the process's thread count in `compare` with
    ``workers=1``, which can move its numbers in the last digits."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    from loka.world.build import WorldArtifacts

    light = WorldArtifacts(artifacts.spec, artifacts.root)  # paths only: cheap to send
    order = sorted(names, key=lambda n: COST_ORDER.index(n) if n in COST_ORDER else -1)
    together = [n for n in _TOGETHER if n in names]  # one task, placed where the first one sorts
    tasks = [together if n in together else [n] for n in order if n not in together[1:]]
    entries: dict[str, Any] = {}
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(light, vs))
    try:
        futures = {pool.submit(_worker_entries, task, settings): task for task in tasks}
        with tqdm(total=len(order), desc=f"compare ({workers} workers)", unit="method",
                  disable=not progress) as bar:
            for future in as_completed(futures):
                for name, entry in _results(future, futures[future]).items():
                    entries[name] = entry
                    bar.set_postfix_str(f"{name} done in {entry['wall_seconds']:.0f}s")
                    bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return {n: entries[n] for n in names}


def compare(artifacts: Any, methods: Sequence[str] | None = None,
            settings: dict[str, dict[str, Any]] | None = None, out: str | Path | None = "results.json",
            *, verify_settings: VerifySettings | None = None, progress: bool = True,
            workers: int | None = None) -> dict[str, Any]:
    """Run and verify ``methods`` (default: all) on ``artifacts``; write ``out`` unless None.

    ``settings`` maps a method name to its keyword settings for `loka.methods.unlearn`.
    ``workers`` > 1 runs the methods in that many single-threaded processes (default
    `default_workers`; 1 runs them here, one after another).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    names = list(dict.fromkeys(methods or DEFAULT_METHODS))
    vs = verify_settings or VerifySettings()
    workers = min(default_workers() if workers is None else workers, len(names))
    if workers < 1:
        raise LokaError(f"workers must be >= 1, got {workers}")
    if workers > 1:
        entries = _compare_parallel(artifacts, names, settings or {}, vs, workers, progress)
    else:
        data, retrain = _reference(artifacts, vs)
        with tqdm(total=len(names), desc="compare", unit="method", disable=not progress) as bar:
            entries = _entries(names, artifacts, data, retrain, settings or {}, vs, progress,
                               start=bar.set_postfix_str, done=lambda name: bar.update())
    results = {
        "world": artifacts.info(),
        "methods": entries,
        "verify_settings": vs.to_dict(),
        "compare_seconds": round(time.perf_counter() - t0, 2),
        "workers": workers,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
    }
    if out is not None:
        write_json(out, results)
    if progress:
        from loka.verify.table import print_results

        print_results(results)
    return results
