"""One contrastive `Ranking` for a localized method, with settings checked first.

Example:
    >>> ranking = rank_on(bridge, forget, retain, ranking_method="atp", ablation="zero",
    ...                   kinds=("neuron", "head"), weight=1.0)
    >>> ranking.top(16)
"""

from __future__ import annotations

from typing import Any

from attribution import Ranking, rank
from loka.methods.localized.common import SettingsError

RANKERS = ("atp", "patch", "ig", "actstats")


def check_ranker(ranking_method: str) -> None:
    if ranking_method not in RANKERS:
        raise SettingsError(f"ranking_method must be one of {RANKERS}, got {ranking_method!r}")


def rank_on(bridge: Any, forget: Any, retain: Any, *, ranking_method: str, ablation: str | None,
            kinds: tuple[str, ...], weight: float, sample: int | None = None) -> Ranking:
    """Rank every component of ``kinds`` on ``bridge`` (hooks only; the model is not modified).

    ``sample`` caps the retain facts scored (the first ones: pass a shuffled batch) — the retain
    effect is a mean, and a thousand facts estimate it well at a fraction of the cost.
    ``actstats`` ablates nothing, so ``ablation`` is ignored for it.
    """
    check_ranker(ranking_method)
    if sample is not None:
        retain = retain[: min(sample, len(retain))]
    options: dict[str, Any] = {"progress": False} if ranking_method == "patch" else {}
    if ranking_method in ("atp", "actstats"):
        options["batch_size"] = 128
    ablation = None if ranking_method == "actstats" else ablation
    return rank(bridge, forget, retain, ranking_method, ablation, kinds=kinds, weight=weight,
                **options)
