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
                settings: dict[str, Any], vs: VerifySettings, progress: bool) -> VerifyReport:
    if name == "base":
        return verify(artifacts.base_dir, data, retrain=retrain, name="base", seconds=0.0,
                      params_changed=0, settings=vs)
    if name == "retrain":
        n_params = sum(p.numel() for p in retrain.model.model.parameters())
        return verify(retrain, data, retrain=retrain, seconds=data.retrain_seconds,
                      params_changed=n_params, settings=vs)
    from loka.methods import task_from_world, unlearn

    result = unlearn(artifacts.base_dir, task_from_world(artifacts), method=name,
                     progress=progress, **settings)
    return verify((result.model, result.tokenizer), data, retrain=retrain, name=name,
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

def compare(artifacts: Any, methods: Sequence[str] | None = None,
            settings: dict[str, dict[str, Any]] | None = None, out: str | Path | None = "results.json",
            *, verify_settings: VerifySettings | None = None, progress: bool = True) -> dict[str, Any]:
    """Run and verify ``methods`` (default: all) on ``artifacts``; write ``out`` unless None.

    ``settings`` maps a method name to its keyword settings for `loka.methods.unlearn`.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    names = list(methods or DEFAULT_METHODS)
    data, vs = VerifyData.from_world(artifacts), verify_settings or VerifySettings()
    retrain = Measurements(load_model(artifacts.retrain_dir, name="retrain"), data, vs)
    entries: dict[str, Any] = {}
    for name in (bar := tqdm(names, desc="compare", unit="method", disable=not progress)):
        bar.set_postfix_str(name)
        entries[name] = run_guarded(lambda name=name: _run_method(
            name, artifacts, data, retrain, (settings or {}).get(name, {}), vs, progress).to_dict())
    results = {
        "world": artifacts.info(),
        "methods": entries,
        "verify_settings": vs.to_dict(),
        "compare_seconds": round(time.perf_counter() - t0, 2),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
    }
    if out is not None:
        write_json(out, results)
    if progress:
        from loka.verify.table import print_results

        print_results(results)
    return results
