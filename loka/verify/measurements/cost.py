"""What the edit cost, and what it was: seconds, changed parameters, divergence, a refusal filter.

Seconds and changed parameters come from the caller (the method's own result), else from the
checkpoint's sealed manifest, else (parameters only) counted against the base model. The cost
ratio is the method's seconds over the time the retrain model took to train (a world records it).

Example:
    >>> count_changed(torch.nn.Linear(2, 1), torch.nn.Linear(2, 1))     # doctest: +SKIP
    3
"""

from __future__ import annotations

from typing import Any

import torch

from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register


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


def run(ctx: Any) -> dict[str, Any]:
    loaded, claims, data = ctx.loaded, ctx.claims, ctx.data
    secs = claims.get("seconds") if claims.get("seconds") is not None else loaded.seconds
    seconds: Any = Missing("unknown: pass seconds= or a checkpoint with a manifest") if secs is None else float(secs)
    ratio: Any = Missing("no retrain training time in the data") if not data.retrain_seconds \
        else seconds if isinstance(seconds, Missing) else seconds / data.retrain_seconds
    given = claims.get("params_changed")
    if given is not None:
        changed: Any = int(given)
    elif loaded.params_changed is not None:
        changed = int(loaded.params_changed)
    elif ctx.base is not None:
        changed = count_changed(loaded.model, ctx.base.model.model)
    else:
        changed = Missing("unknown: pass params_changed=, a checkpoint with a manifest, or base=")
    diverged = claims.get("diverged")
    return {"seconds": seconds, "params_changed": changed, "cost_vs_retrain": ratio,
            "diverged": bool(diverged if diverged is not None else loaded.diverged),
            "refusal_filter": loaded.refusal is not None}


def caveats(entry: dict[str, Any], retrain: dict[str, Any] | None) -> list[str]:
    notes = []
    if entry.get("diverged"):
        notes.append("training diverged (non-finite loss); the guard stopped it and kept the last "
                     "finite weights — its numbers describe a broken run")
    if entry.get("refusal_filter"):
        notes.append("answers through a refusal filter: the weights are unchanged, so anyone with "
                     "the weights has the knowledge")
    return notes


register(Measurement(
    "cost", keys=("seconds", "params_changed", "cost_vs_retrain", "diverged", "refusal_filter"),
    run=run, caveats=caveats,
    columns=(Column("seconds", "seconds", "cost", wide=True, summary=True),
             Column("cost_vs_retrain", "× retrain time", "cost"),
             Column("params_changed", "params changed", "cost", wide=True),
             Column("diverged", "diverged", "cost")),
    doc="The method's own seconds, its cost relative to retraining, the parameters it changed.",
))
