"""Perplexity on held-out retain text: what unlearning cost the model's language modelling.

The text is the retain-eval facts as sentences (people no method saw) and the retain passages;
perplexity is ``exp`` of the token-weighted mean NLL (`loka.verify.logprobs.perplexity`).

Example:
    >>> run(ctx)["perplexity"]          # doctest: +SKIP
    3.9
"""

from __future__ import annotations

from typing import Any

from loka.verify.forward import concat_logprobs
from loka.verify.logprobs import perplexity
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register


def perplexity_of(me: Any) -> float | Missing:
    parts = [fw.text for fw in (me.facts("retain_eval"), me.passages("retain")) if fw is not None]
    if not parts:
        return Missing("no retain-eval facts or retain passages")
    return perplexity(concat_logprobs(parts))


def run(ctx: Any) -> dict[str, Any]:
    return {"perplexity": perplexity_of(ctx.me)}


register(Measurement(
    "perplexity", keys=("perplexity",), run=run,
    columns=(Column("perplexity", "perplexity", "outcome", "lower", wide=True),),
    doc="Perplexity of retain-eval sentences and retain passages (lower is better).",
))
