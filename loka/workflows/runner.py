"""Running methods safely: one guarded entry per method, and single-threaded worker processes.

`run_guarded` turns any failure of one method into an entry with its error (and, for an
unexpected one, a traceback), so one broken method never loses the others' results.
`run_parallel` runs a world's methods in ``workers`` spawned processes, one thread each (two
processes x two threads on two cores ran 5-10x slower). Workers die with their parent
(`loka.children`): ``kill -9`` of ``loka`` included.

Example:
    >>> entry = run_guarded(lambda: {"forget_accuracy": 0.1})
    >>> sorted(entry)
    ['forget_accuracy', 'wall_seconds']
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from typing import Any

from loka.children import die_with_parent, terminate_pool
from loka.errors import LokaError

_WORKER: dict[str, Any] = {}


def failed_entry(error: str) -> dict[str, Any]:
    """A results entry for a method that did not run: every report key null, with the reason."""
    from loka.verify.verifier import report_keys

    entry: dict[str, Any] = {"error": error, "diverged": False}
    for key in report_keys():
        if key != "diverged":
            entry[key], entry[f"{key}_reason"] = None, f"method did not run: {error}"
    return entry


def run_guarded(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s results entry, timed; a failure becomes an entry with the error."""
    started = time.perf_counter()
    try:
        entry = run()
    except LokaError as exc:
        entry = failed_entry(str(exc))
    except Exception as exc:
        entry = failed_entry(f"{type(exc).__name__}: {exc}")
        entry["traceback"] = traceback.format_exc(limit=8)
    entry["wall_seconds"] = round(time.perf_counter() - started, 2)
    return entry


def _init_worker(artifacts: Any, vs: Any, parent: int) -> None:
    import torch

    die_with_parent(parent)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    _WORKER.update(artifacts=artifacts, vs=vs)


def _worker_entries(names: list[str], settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from loka.workflows.compare import _world_entries

    return _world_entries(names, _WORKER["artifacts"], settings, _WORKER["vs"], False)


def _results(future: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """A worker's entries (timed there); a worker that died gives its methods an error entry."""
    try:
        return future.result()
    except Exception as exc:  # BrokenProcessPool when a worker was killed
        error = f"the worker process failed: {type(exc).__name__}: {exc}"
        return {name: failed_entry(error) | {"wall_seconds": 0.0} for name in names}


def tasks_of(names: list[str]) -> list[list[str]]:
    """Costliest first, so parallel workers finish together; methods that change no weight run
    in one task (after the first of them), sharing one measurement of the unchanged weights."""
    from loka.methods import get

    order = sorted(names, key=lambda n: -get(n).cost)
    unchanged = [n for n in order if not get(n).changes_weights]
    tasks = []
    for n in order:
        if n not in unchanged:
            tasks.append([n])
        elif n == unchanged[0]:
            tasks.append(unchanged)
    return tasks


def run_parallel(names: list[str], settings: dict[str, dict[str, Any]], workers: int, progress: bool,
                 *, artifacts: Any, vs: Any) -> dict[str, dict[str, Any]]:
    """Every method of a world in its own task on ``workers`` single-threaded processes.

    Every method and measurement is seeded and the verifier runs at one thread either way; a
    method's own optimisation runs at one thread here and at the process's thread count with
    one worker, which can move its numbers in the last digits."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    from loka.world.build import WorldArtifacts

    light = WorldArtifacts(artifacts.spec, artifacts.root)  # paths only: cheap to send
    entries: dict[str, Any] = {}
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(light, vs, os.getpid()))
    try:
        futures = {pool.submit(_worker_entries, task, settings): task for task in tasks_of(names)}
        with tqdm(total=len(names), desc=f"compare ({workers} workers)", unit="method",
                  disable=not progress) as bar:
            for future in as_completed(futures):
                for name, entry in _results(future, futures[future]).items():
                    entries[name] = entry
                    bar.set_postfix_str(f"{name} done in {entry['wall_seconds']:.0f}s")
                    bar.update()
    except BaseException:  # Ctrl-C, SIGTERM: stop the workers instead of waiting for them
        terminate_pool(pool)
        raise
    pool.shutdown(wait=True)
    return {n: entries[n] for n in names}
