"""`verify`: every measurement of one model, against the retrain gold standard, in one report.

Example:
    >>> art = load_world("default")
    >>> report = verify(art.base_dir, art, retrain=art.retrain_dir, name="base")
    >>> report.forget_accuracy, report.mia_auc["loss"], report.probe_accuracy   # doctest: +SKIP
    >>> json.dumps(report.to_dict(), allow_nan=False)                          # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from loka.verify.data import VerifyData
from loka.verify.loaded import LoadedModel, check_tokenizer, check_vocab_fits, load_model
from loka.verify.measure import Measurements, VerifySettings
from loka.verify.metrics import Missing, UnlearningEvaluation, forget_quality, jsonable
from loka.verify.missing import finite_or_missing
from loka.verify.report_parts import (
    accuracy_of,
    changed_params,
    mia_parts,
    probe_parts,
    relearn_parts,
)

ModelLike = str | Path | tuple[Any, Any] | LoadedModel | Measurements
Value = float | Missing


@dataclass(frozen=True)
class VerifyReport:
    """What the verifier found; ``to_dict()`` is plain JSON (``Missing`` -> null + ``<key>_reason``)."""

    model: str
    data: str
    forget_accuracy: Value
    retain_accuracy: Value
    holdout_accuracy: Value
    heldout_template_forget_accuracy: Value
    novel_template_forget_accuracy: Value
    accuracy: dict[str, Any]
    grades: dict[str, Any] | Missing
    mia_auc: dict[str, Value] | Missing
    mia_auc_by_source: dict[str, Any] | Missing
    privleak: Value
    privleak_by_attack: dict[str, Value] | Missing
    forget_quality: Value
    truth_ratio: dict[str, Any]
    probe_accuracy: Value
    probe_holdout_accuracy: Value
    probe_best_layer: int | Missing
    relearn_accuracy: Value
    relearn_retrain_accuracy: Value
    extraction: dict[str, Any] | Missing
    perplexity: Value
    seconds: Value
    params_changed: int | Missing
    cost_vs_retrain: Value
    diverged: bool
    refusal_filter: bool
    verify_seconds: float
    curves: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})


def report_keys() -> tuple[str, ...]:
    """Every key of a report's JSON (a method that did not run gets each, null with a reason)."""
    return tuple(f.name for f in fields(VerifyReport) if f.name not in ("curves", "warnings"))


def _measurements(model: ModelLike, data: VerifyData, settings: VerifySettings, name: str | None,
                  refusal_filter: dict[str, Any] | None, device: str) -> Measurements:
    if isinstance(model, Measurements):
        return model
    loaded = load_model(model, name=name, refusal_filter=refusal_filter, device=device)
    check_tokenizer(loaded.tokenizer, data.tokenizer, loaded.name)
    check_vocab_fits(loaded)
    return Measurements(loaded, data, settings)


def as_data(world_or_data: Any) -> VerifyData:
    return world_or_data if isinstance(world_or_data, VerifyData) else VerifyData.from_world(world_or_data)


def _grades(forget: Value, retain: Value, auc: Value) -> dict[str, Any] | Missing:
    for v in (forget, retain, auc):
        if isinstance(v, Missing):
            return Missing(f"grades need forget/retain accuracy and the LOSS MIA AUC: {v.reason}")
    return UnlearningEvaluation(forget, retain, auc).to_dict()  # type: ignore[arg-type]


def _truth(me: Measurements, ref: Measurements | None) -> tuple[Value, dict[str, Any]]:
    import numpy as np

    tr = me.truth_ratios()
    ref_tr = None if ref is None else ref.truth_ratios()
    median = lambda x: x if isinstance(x, Missing) else finite_or_missing(np.median(x), "median truth ratio")  # noqa: E731
    summary = {"median": median(tr), "retrain_median": Missing("no retrain model") if ref_tr is None
               else median(ref_tr), "n_items": 0 if isinstance(tr, Missing) else int(tr.size)}
    fq = tr if isinstance(tr, Missing) else forget_quality(tr, ref_tr)
    return fq, summary


def verify(model: ModelLike, world_or_data: Any, *, base: ModelLike | None = None,
           retrain: ModelLike | None = None, name: str | None = None,
           refusal_filter: dict[str, Any] | None = None, seconds: float | None = None,
           params_changed: int | None = None, diverged: bool | None = None,
           settings: VerifySettings | None = None, device: str = "cpu") -> VerifyReport:
    """Measure ``model`` (a checkpoint dir, ``(hf_model, tokenizer)`` or cached `Measurements`).

    ``retrain`` (the gold standard) enables PrivLeak, forget quality, the reference attack and
    the relearning reference; without it they are ``Missing`` with the reason. ``base`` is only
    used to count changed parameters when neither the caller nor a manifest says.
    """
    t0 = time.perf_counter()
    data, settings = as_data(world_or_data), settings or VerifySettings()
    me = _measurements(model, data, settings, name, refusal_filter, device)
    ref = None if retrain is None else _measurements(retrain, data, settings, "retrain", None, device)
    loaded = me.model
    acc = me.accuracy()
    forget, retain = accuracy_of(acc, "forget"), accuracy_of(acc, "retain_eval")
    mia = mia_parts(me, ref)
    fq, truth = _truth(me, ref)
    probe, relearn = probe_parts(me), relearn_parts(me, ref)
    secs = seconds if seconds is not None else loaded.seconds
    secs_value: Value = Missing("unknown: pass seconds= or a checkpoint with a manifest") \
        if secs is None else float(secs)
    ratio: Value = Missing("no retrain training time in the data") if not data.retrain_seconds \
        else secs_value if isinstance(secs_value, Missing) else secs_value / data.retrain_seconds
    base_m = None if base is None else _measurements(base, data, settings, "base", None, device)
    changed = changed_params(loaded, params_changed, base_m)
    return VerifyReport(
        model=loaded.name, data=data.name, forget_accuracy=forget, retain_accuracy=retain,
        holdout_accuracy=accuracy_of(acc, "holdout"),
        heldout_template_forget_accuracy=accuracy_of(acc, "forget", "qa"),
        novel_template_forget_accuracy=accuracy_of(acc, "forget", "novel"), accuracy=acc,
        grades=_grades(forget, retain, mia["auc"] if isinstance(mia["auc"], Missing) else mia["auc"]["loss"]),
        mia_auc=mia["auc"], mia_auc_by_source=mia["by_source"], privleak=mia["privleak"],
        privleak_by_attack=mia["privleak_by_attack"], forget_quality=fq, truth_ratio=truth,
        probe_accuracy=probe["accuracy"], probe_holdout_accuracy=probe["holdout_accuracy"],
        probe_best_layer=probe["best_layer"], relearn_accuracy=relearn["accuracy"],
        relearn_retrain_accuracy=relearn["retrain_accuracy"], extraction=me.extraction(),
        perplexity=me.perplexity(), seconds=secs_value, params_changed=changed,
        cost_vs_retrain=ratio, diverged=bool(diverged if diverged is not None else loaded.diverged),
        refusal_filter=loaded.refusal is not None, verify_seconds=time.perf_counter() - t0,
        curves={"mia_roc": mia["roc"], "probe": probe["curves"], "relearn": relearn["curves"]},
        warnings=list(loaded.warnings),
    )
