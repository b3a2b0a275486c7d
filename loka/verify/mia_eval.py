"""Membership inference on a model's forward results: per-attack scores, AUCs, ROC and PrivLeak.

Members are the forget texts, non-members the holdout texts, from two sources: ``facts`` (each
person's facts in the trained templates, as the sentence ``prompt + " " + answer``) and
``passages``. Scores of every attack follow "higher = more likely a member"; the headline AUC
pools both sources, and each source's own AUC is kept for the report.

Example:
    >>> scores = attack_scores({"facts": (forget_ff, holdout_ff)})       # doctest: +SKIP
    >>> mia = MiaResult.of(scores)                                       # doctest: +SKIP
    >>> mia.auc["loss"], mia.privleak(retrain_mia)["loss"]               # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from loka.verify.forward import TextForward
from loka.verify.metrics import (
    Missing,
    RocCurve,
    loss_score,
    mean_nll,
    mia_auc,
    mia_roc,
    min_k_score,
    privleak,
    reference_score,
    zlib_score,
)

ATTACKS: tuple[str, ...] = ("loss", "zlib", "min_k", "min_k_plus_plus", "reference")
Pair = tuple[np.ndarray | Missing, np.ndarray | Missing]  # (member scores, non-member scores)


def _one_side(fw: TextForward, k: float) -> dict[str, np.ndarray]:
    return {
        "loss": loss_score(fw.text),
        "zlib": zlib_score(fw.text, fw.texts),
        "min_k": min_k_score(fw.text, k),
        "min_k_plus_plus": fw.min_k_plus_plus,
        "nll": mean_nll(fw.text),
    }


def attack_scores(sources: Mapping[str, tuple[TextForward, TextForward]], *, k: float = 0.4,
                  reference_nll: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                  ) -> dict[str, dict[str, Pair]]:
    """``{source: {attack: (members, non-members)}}``, plus ``"nll"`` for the reference attack.

    ``reference_nll`` is the retrain model's per-item NLL for the same sources (None: the
    reference attack is ``Missing``).
    """
    out: dict[str, dict[str, Pair]] = {}
    for source, (members, nonmembers) in sources.items():
        m, n = _one_side(members, k), _one_side(nonmembers, k)
        pairs: dict[str, Pair] = {a: (m[a], n[a]) for a in ATTACKS if a != "reference"}
        pairs["nll"] = (m["nll"], n["nll"])
        ref = None if reference_nll is None else reference_nll.get(source)
        pairs["reference"] = (reference_score(m["nll"], None if ref is None else ref[0]),
                              reference_score(n["nll"], None if ref is None else ref[1]))
        out[source] = pairs
    return out


def _pooled(scores: Mapping[str, Mapping[str, Pair]], attack: str) -> Pair:
    sides: list[list[np.ndarray]] = [[], []]
    for pairs in scores.values():
        for i, side in enumerate(pairs[attack]):
            if isinstance(side, Missing):
                return side, side
            sides[i].append(side)
    return np.concatenate(sides[0]), np.concatenate(sides[1])


@dataclass(frozen=True)
class MiaResult:
    """AUC and ROC per attack (pooled over sources), each source's AUCs, and the per-item NLLs."""

    auc: dict[str, float | Missing]
    roc: dict[str, RocCurve | Missing]
    by_source: dict[str, dict[str, float | Missing]]
    nll: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, scores: Mapping[str, Mapping[str, Pair]]) -> MiaResult:
        roc = {a: mia_roc(*_pooled(scores, a)) for a in ATTACKS}
        auc = {a: r if isinstance(r, Missing) else r.auc for a, r in roc.items()}
        by_source = {s: {a: mia_auc(*pairs[a]) for a in ATTACKS} for s, pairs in scores.items()}
        nll = {s: (pairs["nll"][0], pairs["nll"][1]) for s, pairs in scores.items()}
        return cls(auc, roc, by_source, nll)  # type: ignore[arg-type]

    def privleak(self, retrain: MiaResult | None) -> dict[str, float | Missing]:
        """PrivLeak per attack against the retrain model's AUC for the same attack."""
        out: dict[str, float | Missing] = {}
        for a in ATTACKS:
            if a == "reference":  # its retrain AUC is 0.5 by construction; PrivLeak says nothing
                continue
            out[a] = privleak(self.auc[a], None if retrain is None else retrain.auc[a])
        return out
