"""`compare` for user data: the user's model and JSONL fact files, no world and no retrain model.

The retain file is split in two by subject (by row when records have no subject): methods see
the first half, the verifier measures retained knowledge on the other half, as for a world. With
no retrain model every retrain-relative metric is ``null`` with its reason; with no holdout file
membership inference is skipped (it needs non-members), also with its reason.

Example:
    >>> data, task = user_data("ckpt", "forget.jsonl", "retain.jsonl", "holdout.jsonl")  # doctest: +SKIP
    >>> compare_user("ckpt", data, task, methods=["base", "loka-ft"], out="results.json")  # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from loka.errors import LokaError
from loka.io.atomic import write_json
from loka.io.data import FactRecord, load_facts
from loka.memory import release_freed_memory
from loka.methods import names
from loka.verify.data import VerifyData
from loka.verify.loaded import load_model
from loka.verify.measure import Measurements, VerifySettings
from loka.workflows.compare import check_settings, machine, method_entry
from loka.workflows.runner import run_guarded


def user_methods() -> list[str]:
    """The comparison's methods that need no retrain model."""
    return [m for m in names(compare_only=True) if m != "retrain"]


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

    from loka.io.models import resolve_model_source
    from loka.methods import UnlearnTask

    all_forget = load_facts(forget)
    retain_train, retain_eval = split_retain(load_facts(retain))
    holdout_facts = load_facts(holdout) if holdout is not None else []
    facts: dict[tuple[str, str], tuple[FactRecord, ...]] = {}
    for split, records in (("forget", all_forget), ("retain_train", retain_train),
                           ("retain_eval", retain_eval), ("holdout", holdout_facts)):
        for f in records:  # each question form (template) is its own fact set
            facts[(split, f.kind)] = (*facts.get((split, f.kind), ()), f)
    forget_facts = list(facts.get(("forget", "train"), ()))
    if not forget_facts:
        raise LokaError(f"{forget}: no forget facts in a training form (template absent or 'train'); "
                        "methods unlearn from those, other templates are only asked by the verifier")
    overlap = {(f.prompt, f.answer) for f in all_forget} & {(f.prompt, f.answer) for f in retain_train + retain_eval}
    if overlap:
        warnings.warn(f"{len(overlap)} fact(s) are in both the forget and the retain file; "
                      "methods will pull them both ways", stacklevel=2)
    info = {"preset": "user data", "user_data": {
        "model": str(model), "forget": str(forget), "retain": str(retain),
        "holdout": None if holdout is None else str(holdout), "forget_facts": len(forget_facts),
        "retain_facts": len(retain_train) + len(retain_eval), "retain_train_facts": len(retain_train),
        "retain_eval_facts": len(retain_eval), "holdout_facts": len(holdout_facts)}}
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_source(model))
    data = VerifyData(facts=facts, tokenizer=tokenizer, info=info, name="user data")
    retain_seen = tuple(f for f in retain_train if f.kind == "train")
    return data, UnlearnTask(forget=tuple(forget_facts), retain=retain_seen)


def compare_user(model: str | Path, data: VerifyData, task: Any, methods: Sequence[str] | None = None,
                 settings: dict[str, dict[str, Any]] | None = None, out: str | Path | None = None,
                 *, verify_settings: VerifySettings | None = None, progress: bool = True,
                 placement: Any = None) -> dict[str, Any]:
    """Run and verify ``methods`` on the user's model; same ``results.json`` shape as `compare`.

    There is no retrain model: asking for ``retrain`` gives its entry the reason."""
    from tqdm.auto import tqdm

    chosen = list(dict.fromkeys(methods or user_methods()))
    settings = check_settings(chosen, settings or {})
    t0, vs, entries = time.perf_counter(), verify_settings or VerifySettings(), {}
    base = Measurements(load_model(model, name="base", placement=placement), data, vs)  # before unlearning
    for name in (bar := tqdm(chosen, desc="compare", unit="method", disable=not progress)):
        bar.set_postfix_str(name)
        entries[name] = run_guarded(partial(method_entry, model, task, name, settings.get(name, {}),
                                            data, None, base, vs, progress=progress, placement=placement))
        release_freed_memory()  # the method's model and graphs: hand their heap pages back
    results = {"world": dict(data.info), "methods": entries, "verify_settings": vs.to_dict(),
               "compare_seconds": round(time.perf_counter() - t0, 2), "machine": machine()}
    if out is not None:
        write_json(out, results)
    return results
