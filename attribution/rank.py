"""One entry point: ``rank(bridge, forget, retain, method=..., ablation=...) -> Ranking``.

``forget`` and ``retain`` are `FactBatch` (scored by answer log-prob) or `PassageBatch` (scored
by mean token log-likelihood). Every neuron and head of the given kinds is scored, in the fixed
order of ``ModelShape.components``. The model is never modified: hooks only, always removed.

Example:
    >>> forget = tokenize_facts(bridge.tokenizer, prompts, answers, max_len=bridge.cfg.n_ctx)  # doctest: +SKIP
    >>> ranking = rank(bridge, forget, retain, method="atp", ablation="mean")  # doctest: +SKIP
    >>> ranking.top(20)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

import attribution.methods  # noqa: F401  (registers the built-in methods)
from attribution.ablation import ABLATIONS
from attribution.components import KINDS, ComponentKind, ModelShape, validate_components
from attribution.data import FactBatch, PassageBatch
from attribution.metrics import metric_name
from attribution.ranking import Ranking
from attribution.registry import get_method


def _check_set(batch: Any, name: str) -> None:
    if not isinstance(batch, FactBatch | PassageBatch):
        raise TypeError(f"the {name} set must be a FactBatch or PassageBatch, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError(f"the {name} set is empty")


def rank(bridge: Any, forget: FactBatch | PassageBatch, retain: FactBatch | PassageBatch,
         method: str = "atp", ablation: str | None = None, *,
         kinds: tuple[ComponentKind, ...] = KINDS, weight: float = 1.0, eps: float = 1e-6,
         **options: Any) -> Ranking:
    """Score every component of ``kinds`` on both sets with ``method`` and contrast them.

    ``ablation`` defaults to ``zero`` for the ablation-based methods (patch, atp, ig) and must
    be None for ``actstats``; ``options`` go to the method (e.g. ``steps=`` for ig).
    """
    fn = get_method(method)
    if ablation is not None and ablation not in ABLATIONS:  # a plain str: it may come from a CLI
        raise ValueError(f"ablation must be one of {ABLATIONS} or None, got {ablation!r}")
    _check_set(forget, "forget")
    _check_set(retain, "retain")
    components = ModelShape.of(bridge).components(kinds)
    validate_components(bridge, components)
    start = time.perf_counter()
    scores = fn(bridge, forget, retain, components, ablation=ablation, **options)
    return Ranking(
        components=tuple(components),
        forget_scores=scores.forget,
        retain_scores=scores.retain,
        formula=scores.formula,
        weight=float(weight),
        eps=float(eps),
        method=method,
        ablation=scores.ablation,
        model_id=str(getattr(bridge.cfg, "model_name", "unknown")),
        forget_hash=forget.hash,
        retain_hash=retain.hash,
        forget_metric=metric_name(forget),
        retain_metric=metric_name(retain),
        seconds=time.perf_counter() - start,
        forward_passes=scores.forward_passes,
        backward_passes=scores.backward_passes,
        options=scores.options,
    )
