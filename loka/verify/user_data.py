"""`compare` for user data: the user's model and JSONL fact files, no world and no retrain model.

The retain file is split in two by subject (by row when records have no subject): methods see
the first half, the verifier measures retained knowledge on the other half, as for a world. With
no retrain model every retrain-relative metric is ``null`` with its reason; with no holdout file
membership inference is skipped (it needs non-members), also with its reason.

Example:
    >>> data, task = user_data("ckpt", "forget.jsonl", "retain.jsonl", "holdout.jsonl")
    >>> compare_user("ckpt", data, task, methods=["base", "loka-ft"], out="results.json")
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loka.data import FactRecord, load_facts
from loka.errors import LokaError
from loka.verify.compare import DEFAULT_METHODS, run_guarded, write_json
from loka.verify.data import VerifyData
from loka.verify.measure import VerifySettings
from loka.verify.verifier import verify

USER_METHODS: tuple[str, ...] = tuple(m for m in DEFAULT_METHODS if m != "retrain")


def split_retain(facts: Sequence[FactRecord]) -> tuple[list[FactRecord], list[FactRecord]]:
    """Retain facts a method may see, and retain facts only the verifier sees (every other subject)."""
    if len(facts) < 2:
        raise LokaError("the retain file needs at least 2 facts: half to protect, half to measure")
    subjects = list(dict.fromkeys(f.subject for f in facts if f.subject))
    if len(subjects) >= 2 and all(f.subject for f in facts):
        held = set(subjects[1::2])
        return [f for f in facts if f.subject not in held], [f for f in facts if f.subject in held]
    return list(facts[0::2]), list(facts[1::2])


def user_data(model: str | Path, forget: str | Path, retain: str | Path,
              holdout: str | Path | None = None) -> tuple[VerifyData, Any]:
    """The verifier's data and the methods' `UnlearnTask` from the user's files."""
    from transformers import AutoTokenizer

    from loka.methods import UnlearnTask
    from loka.models import resolve_model_source

    forget_facts = load_facts(forget)
    retain_train, retain_eval = split_retain(load_facts(retain))
    holdout_facts = load_facts(holdout) if holdout is not None else []
    facts = {("forget", "train"): tuple(forget_facts), ("retain_train", "train"): tuple(retain_train),
             ("retain_eval", "train"): tuple(retain_eval)}
    if holdout_facts:
        facts[("holdout", "train")] = tuple(holdout_facts)
    info = {"preset": "user data", "user_data": {
        "model": str(model), "forget": str(forget), "retain": str(retain),
        "holdout": None if holdout is None else str(holdout), "forget_facts": len(forget_facts),
        "retain_facts": len(retain_train) + len(retain_eval), "retain_train_facts": len(retain_train),
        "retain_eval_facts": len(retain_eval), "holdout_facts": len(holdout_facts)}}
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_source(model))
    data = VerifyData(facts=facts, tokenizer=tokenizer, info=info, name="user data")
    return data, UnlearnTask(forget=tuple(forget_facts), retain=tuple(retain_train))


def _run(name: str, model: str | Path, data: VerifyData, task: Any, settings: dict[str, Any],
         vs: VerifySettings, progress: bool) -> dict[str, Any]:
    if name == "retrain":
        raise LokaError("no retrain model for user data: retrain-relative metrics not computed")
    if name == "base":
        return verify(model, data, name="base", seconds=0.0, params_changed=0, settings=vs).to_dict()
    from loka.methods import unlearn

    r = unlearn(model, task, method=name, progress=progress, **settings)
    return verify((r.model, r.tokenizer), data, name=name, refusal_filter=r.refusal_filter,
                  seconds=r.seconds, params_changed=r.params_changed, diverged=r.diverged,
                  settings=vs).to_dict()


def compare_user(model: str | Path, data: VerifyData, task: Any, methods: Sequence[str] | None = None,
                 settings: dict[str, dict[str, Any]] | None = None, out: str | Path | None = None,
                 *, verify_settings: VerifySettings | None = None, progress: bool = True,
                 ) -> dict[str, Any]:
    """Run and verify ``methods`` on the user's model; same ``results.json`` shape as `compare`."""
    from tqdm.auto import tqdm

    t0, vs, entries = time.perf_counter(), verify_settings or VerifySettings(), {}
    for name in (bar := tqdm(list(methods or USER_METHODS), desc="compare", unit="method",
                             disable=not progress)):
        bar.set_postfix_str(name)
        entries[name] = run_guarded(
            lambda name=name: _run(name, model, data, task, (settings or {}).get(name, {}), vs, progress))
    results = {"world": dict(data.info), "methods": entries, "verify_settings": vs.to_dict(),
               "compare_seconds": round(time.perf_counter() - t0, 2),
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "python": platform.python_version()}}
    if out is not None:
        write_json(out, results)
    return results
