"""Small pieces of a `VerifyReport`: each turns a cached measurement into report values.

Example:
    >>> accuracy_of({"forget": {"train": {"first_token": 0.9}}}, "forget")
    0.9
    >>> accuracy_of({}, "holdout")
    Missing(reason='no holdout facts (train templates)')
"""

from __future__ import annotations

from typing import Any

import torch

from loka.verify.loaded import LoadedModel
from loka.verify.metrics import Missing


def accuracy_of(acc: dict[str, Any], split: str, kind: str = "train") -> float | Missing:
    """First-token accuracy of one fact set (the headline accuracy), or why there is none."""
    try:
        return float(acc[split][kind]["first_token"])
    except KeyError:
        return Missing(f"no {split} facts ({kind} templates)")


def count_changed(model: Any, base: Any) -> int | Missing:
    """Parameter entries that differ from ``base`` (same names and shapes required)."""
    mine, theirs = dict(model.named_parameters()), dict(base.named_parameters())
    if mine.keys() != theirs.keys():
        return Missing("the base model has other parameters; cannot count changes")
    n = 0
    with torch.no_grad():
        for key, p in mine.items():
            q = theirs[key]
            if p.shape != q.shape:
                return Missing(f"parameter {key} has another shape than the base's")
            n += int((p.detach().cpu() != q.detach().cpu()).sum())
    return n


def changed_params(loaded: LoadedModel, given: int | None, base: Any) -> int | Missing:
    """Given by the caller, else the manifest's, else counted against ``base``."""
    if given is not None:
        return int(given)
    if loaded.params_changed is not None:
        return int(loaded.params_changed)
    if base is not None:
        return count_changed(loaded.model, base.model.model)
    return Missing("unknown: pass params_changed=, a checkpoint with a manifest, or base=")


def mia_parts(me: Any, ref: Any) -> dict[str, Any]:
    """AUC per attack, per source, ROC curves and PrivLeak (LOSS attack, and per attack)."""
    mia = me.mia(ref)
    if isinstance(mia, Missing):
        return dict.fromkeys(("auc", "by_source", "roc", "privleak", "privleak_by_attack"), mia)
    ref_mia = None if ref is None else ref.mia()
    ref_mia = None if isinstance(ref_mia, Missing) else ref_mia
    by_attack = mia.privleak(ref_mia)
    return {"auc": mia.auc, "by_source": mia.by_source, "roc": mia.roc,
            "privleak": by_attack["loss"], "privleak_by_attack": by_attack}


def probe_parts(me: Any) -> dict[str, Any]:
    probes = me.probes()
    if isinstance(probes, Missing):
        return dict.fromkeys(("accuracy", "holdout_accuracy", "best_layer", "curves"), probes)
    curves = {"forget": probes.forget, "holdout": probes.holdout, "classes": probes.classes,
              "n_test": probes.n_test, "layer": "blocks.{L}.hook_resid_post at the subject's last token"}
    return {"accuracy": probes.accuracy, "holdout_accuracy": probes.holdout_accuracy,
            "best_layer": probes.best_layer, "curves": curves}


def relearn_parts(me: Any, ref: Any) -> dict[str, Any]:
    mine = me.relearn()
    theirs = Missing("no retrain model: no relearning reference") if ref is None else ref.relearn()
    return {
        "accuracy": mine if isinstance(mine, Missing) else mine.best,
        "retrain_accuracy": theirs if isinstance(theirs, Missing) else theirs.best,
        "curves": {"model": mine, "retrain": theirs},
    }
