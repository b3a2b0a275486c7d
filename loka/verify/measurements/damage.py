"""Was the model damaged? Retain accuracy and perplexity against the model before unlearning.

A method can reach any forget target by wrecking the model; the verdict must say so, whatever
its settings. A model is **damaged** when its retain-eval accuracy falls below ``0.8 x`` the base
model's or its perplexity rises above ``2 x`` the base model's; the JSON, the terminal table
and the report then say "model damaged" with both ratios.

Example:
    >>> damage_of(0.5, 0.9, 40.0, 10.0)["damaged"]      # 0.56 of base retain, 4x perplexity
    True
"""

from __future__ import annotations

from typing import Any

from loka.verify.measurements.accuracy import accuracy_of, accuracy_table
from loka.verify.measurements.perplexity import perplexity_of
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register

MIN_RETAIN_RATIO, MAX_PERPLEXITY_RATIO = 0.8, 2.0


def damage_of(retain: float, base_retain: float, ppl: float | None, base_ppl: float | None) -> dict[str, Any]:
    retain_ratio = retain / base_retain if base_retain else None
    ppl_ratio = ppl / base_ppl if ppl is not None and base_ppl else None
    damaged = bool((retain_ratio is not None and retain_ratio < MIN_RETAIN_RATIO)
                   or (ppl_ratio is not None and ppl_ratio > MAX_PERPLEXITY_RATIO))
    return {"damaged": damaged, "retain_ratio": retain_ratio, "perplexity_ratio": ppl_ratio}


def run(ctx: Any) -> dict[str, Any]:
    retain, ppl = ctx.values.get("retain_accuracy"), ctx.values.get("perplexity")
    base_retain = accuracy_of(ctx.base.cached("accuracy", lambda: accuracy_table(ctx.base)), "retain_eval")
    base_ppl = ctx.base.cached("perplexity", lambda: perplexity_of(ctx.base))
    if not isinstance(retain, float) or isinstance(base_retain, Missing):
        return {"damage": Missing("no retain-eval accuracy to compare with the base model's")}
    return {"damage": damage_of(retain, base_retain, ppl if isinstance(ppl, float) else None,
                                base_ppl if isinstance(base_ppl, float) else None)}


def caveats(entry: dict[str, Any], retrain: dict[str, Any] | None) -> list[str]:
    d = entry.get("damage") or {}
    if not d.get("damaged"):
        return []
    parts = [f"retain-eval accuracy {d['retain_ratio']:.2f} of the base model's"] if d.get("retain_ratio") is not None else []
    parts += [f"perplexity {d['perplexity_ratio']:.1f}x the base model's"] if d.get("perplexity_ratio") is not None else []
    return [f"model damaged: {', '.join(parts)} — its forgetting is bought with the rest of the "
            "model, whatever the forget columns say"]


register(Measurement(
    "damage", keys=("damage",), run=run, needs=("base",), caveats=caveats,
    columns=(Column("damage.damaged", "model damaged", "outcome", wide=True, summary=True),),
    doc="Damaged when retain-eval accuracy < 0.8 x the base model's or perplexity > 2 x.",
))
