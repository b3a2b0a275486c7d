"""Membership inference: can an attacker tell the forget texts from never-seen holdout texts?

Members are the forget texts, non-members the holdout texts, from two sources: ``facts`` (each
person's facts in the trained templates, as the sentence ``prompt + " " + answer``) and
``passages``. Every score follows one convention: HIGHER means "more likely a member" (the model
finds the text unusually likely). The headline AUC pools both sources; each source's own AUC is
kept for the report. PrivLeak is MUSE's, relative to the retrain model's AUC. Scores are float64
arrays, finite whenever the logits are; non-finite scores become ``Missing``, never a silent NaN.

Example:
    >>> mia_auc(np.array([0.9, 0.8]), np.array([0.1, 0.8]))   # (1 + 1 + 1 + 0.5) / 4 pairs
    0.875
    >>> round(privleak(0.6, 0.5), 9)                           # MUSE's AUC' = 1 - AUC: (.4 - .5) / .5
    -20.0
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int, Real
from sklearn.metrics import roc_auc_score, roc_curve
from torch import Tensor

from loka.verify.forward import TextForward
from loka.verify.logprobs import TokenLogprobs, mean_logprob, mean_nll, scored_counts
from loka.verify.missing import Missing, finite_or_missing
from loka.verify.registry import Column, Measurement, register

# Min-K%++'s variance floor (as open-unlearning's): a near-certain next-token distribution has a
# tiny but real spread, and an unlikely observed token there must score very negative, not 0.
_MIN_VARIANCE = 1e-6


def loss_score(tl: TokenLogprobs) -> Float[np.ndarray, " batch"]:
    """LOSS attack (Yeom et al. 2018): ``-mean token NLL``."""
    return mean_logprob(tl)


def zlib_score(tl: TokenLogprobs, texts: Sequence[str]) -> Float[np.ndarray, " batch"]:
    """zlib attack (Carlini et al. 2021): ``-(mean NLL / len(zlib.compress(text.encode())))``.

    Dividing by the text's zlib entropy discounts texts that are likely merely for being simple.
    ``texts[b]`` is row ``b``'s scored text (what the mask covers), UTF-8 encoded.
    """
    if len(texts) != tl.logprobs.shape[0]:
        raise ValueError(f"{len(texts)} texts for {tl.logprobs.shape[0]} rows")
    zlib_len = np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=np.float64)
    return mean_logprob(tl) / zlib_len


def _check_k(k: float) -> None:
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k is a fraction of tokens in (0, 1], got {k}")


def mean_of_lowest(
    values: Float[Tensor, "batch target"], mask: Bool[Tensor, "batch target"], k: float
) -> Float[np.ndarray, " batch"]:
    """Per row, the mean of the lowest ``max(1, int(k * n))`` of its ``n`` masked values.

    ``int(k * n)`` truncates as the Min-K% reference code does; at least one token always counts.
    """
    _check_k(k)
    n = scored_counts(mask)
    keep = torch.clamp((n.double() * k).floor().long(), min=1)
    ordered = torch.where(mask, values.double(), torch.inf).sort(-1).values
    taken = torch.arange(values.shape[-1], device=values.device) < keep.unsqueeze(-1)
    return (torch.where(taken, ordered, 0.0).sum(-1) / keep).cpu().numpy()


def min_k_score(tl: TokenLogprobs, k: float = 0.4) -> Float[np.ndarray, " batch"]:
    """Min-K% (Shi et al. 2024): mean of the lowest ``k`` fraction of token log-probs.

    Example: log-probs ``[ln .25, ln .8, ln .1, ln .5]``, ``k = 0.5`` -> ``(ln .1 + ln .25) / 2``.
    """
    return mean_of_lowest(tl.logprobs, tl.mask, k)


def min_k_plus_plus_z(
    logits: Float[Tensor, "batch pos vocab"], input_ids: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    """Per-token Min-K%++ statistic ``z_t = (log p(x_t) - mu_t) / sigma_t`` (Zhang et al. 2024).

    ``mu_t = sum_v p_v log p_v`` and ``sigma_t^2 = sum_v p_v (log p_v - mu_t)^2`` under the
    model's own next-token distribution at ``t - 1``; the centred form equals
    ``sum_v p_v (log p_v)^2 - mu_t^2`` but cannot go negative in floating point. The variance is
    floored at 1e-6 (sigma >= 1e-3): a flat distribution gives ``z = 0`` (every token is its
    mean), a near-certain one a very negative ``z`` for an unlikely observed token.
    Example: ``p = (.5, .25, .25)`` gives ``z = +1`` for token 0 and ``-1`` for tokens 1, 2.
    """
    # float32 (not float64): the [batch pos vocab] temporaries are the memory cost here.
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    p = logp.exp()
    # p == 0 only where log p == -inf (masked vocabulary); those terms are 0, not 0 * inf = NaN.
    live = p > 0
    mu = torch.where(live, p * logp, 0.0).sum(-1)
    var = torch.where(live, p * (logp - mu.unsqueeze(-1)) ** 2, 0.0).sum(-1)
    sigma = var.clamp(min=_MIN_VARIANCE).sqrt()
    token_logp = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logp - mu) / sigma


def min_k_plus_plus_score(
    logits: Float[Tensor, "batch pos vocab"],
    input_ids: Int[Tensor, "batch pos"],
    mask: Bool[Tensor, "batch pos"],
    k: float = 0.4,
) -> Float[np.ndarray, " batch"]:
    """Min-K%++: mean of the lowest ``k`` fraction of the scored tokens' ``z_t`` (see above)."""
    return mean_of_lowest(min_k_plus_plus_z(logits, input_ids), mask[:, 1:], k)


def reference_score(
    model_nll: Float[np.ndarray, " batch"],
    reference_nll: Float[np.ndarray, " batch"] | Missing | None,
) -> Float[np.ndarray, " batch"] | Missing:
    """Reference attack (Carlini et al. 2021): ``NLL_ref - NLL_model`` with ref = retrain model.

    Positive where the edited model still finds a text easier than a model that never saw it.
    """
    if reference_nll is None:
        return Missing("no reference (retrain) model")
    if isinstance(reference_nll, Missing):
        return reference_nll
    return reference_nll - model_nll


def _labelled(
    members: Real[np.ndarray, " n_members"] | Missing,
    nonmembers: Real[np.ndarray, " n_nonmembers"] | Missing,
) -> tuple[np.ndarray, np.ndarray] | Missing:
    """``(labels, scores)`` with members labelled 1, or the reason there are none to rank."""
    if isinstance(members, Missing):
        return members
    if isinstance(nonmembers, Missing):
        return nonmembers
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError(
            f"MIA AUC needs members and non-members; got {members.size} and {nonmembers.size}"
        )
    scores = np.concatenate([members, nonmembers]).astype(np.float64)
    if not np.isfinite(scores).all():
        return Missing("non-finite MIA scores; the model's outputs may have diverged")
    labels = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    return labels, scores


def mia_auc(
    member_scores: Real[np.ndarray, " n_members"] | Missing,
    nonmember_scores: Real[np.ndarray, " n_nonmembers"] | Missing,
) -> float | Missing:
    """ROC AUC of separating members from non-members by score (scikit-learn).

    0.5 is chance (also what all-equal scores give), 1.0 perfect membership detection. A
    ``Missing`` input passes through; an empty set raises ``ValueError``.
    """
    labelled = _labelled(member_scores, nonmember_scores)
    if isinstance(labelled, Missing):
        return labelled
    return float(roc_auc_score(*labelled))


@dataclass(frozen=True)
class RocCurve:
    """ROC points for plotting: false- and true-positive rates at each distinct threshold."""

    auc: float
    fpr: Float[np.ndarray, " point"]
    tpr: Float[np.ndarray, " point"]

    def to_dict(self) -> dict[str, float | list[float]]:
        return {"auc": self.auc, "fpr": self.fpr.tolist(), "tpr": self.tpr.tolist()}


def mia_roc(
    member_scores: Real[np.ndarray, " n_members"] | Missing,
    nonmember_scores: Real[np.ndarray, " n_nonmembers"] | Missing,
) -> RocCurve | Missing:
    """`mia_auc` together with the ROC curve (``sklearn.metrics.roc_curve``), for plots."""
    labelled = _labelled(member_scores, nonmember_scores)
    if isinstance(labelled, Missing):
        return labelled
    fpr, tpr, _ = roc_curve(*labelled)  # thresholds dropped: the first one is +inf
    auc = float(roc_auc_score(*labelled))
    return RocCurve(auc=auc, fpr=fpr.astype(np.float64), tpr=tpr.astype(np.float64))


def privleak(
    auc_unlearned: float | Missing, auc_retrain: float | Missing | None
) -> float | Missing:
    """PrivLeak (MUSE, Shi et al. 2024): ``(AUC'_unlearned - AUC'_retrain) / AUC'_retrain * 100``.

    MUSE's AUC (its key ``forget_holdout_Min-40%``) takes the forget texts as the *non-members*,
    so it is ``AUC' = 1 - AUC`` for this module's AUCs (forget texts are the positive class, 1 =
    members perfectly detected). PrivLeak is computed in MUSE's orientation so its numbers read
    like MUSE's tables: 0 is ideal; strongly negative means under-unlearned (a model that still
    knows the forget set: AUC 1, PrivLeak -100 %), strongly positive over-unlearned (the forget
    set looks *less* familiar than unseen text). Without a usable retrain AUC the value is
    ``Missing`` with the reason, never ``inf`` or NaN.
    """
    if isinstance(auc_unlearned, Missing):
        return auc_unlearned
    if auc_retrain is None:
        return Missing("no retrain model: PrivLeak is relative to the retrain model's AUC")
    if isinstance(auc_retrain, Missing):
        return Missing(f"retrain AUC unavailable: {auc_retrain.reason}")
    if auc_retrain == 1:
        return Missing("retrain AUC is 1 (MUSE's AUC 0): PrivLeak's denominator vanishes")
    mine, theirs = 1.0 - auc_unlearned, 1.0 - auc_retrain
    return finite_or_missing((mine - theirs) / theirs * 100.0, "PrivLeak")


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


def _sources(me: Any) -> dict[str, tuple[TextForward, TextForward]]:
    sources = {}
    for source, member, nonmember in (("facts", me.facts("forget"), me.facts("holdout")),
                                      ("passages", me.passages("forget"), me.passages("holdout"))):
        if member is not None and nonmember is not None:
            sources[source] = (member, nonmember)
    return sources


def mia_of(me: Any, reference: Any = None) -> MiaResult | Missing:
    """MIA on forget vs holdout texts; ``reference`` (the retrain model's measurements) adds the
    reference attack from its NLLs."""
    k = me.settings.min_k
    own = me.cached(("mia", None), lambda: MiaResult.of(attack_scores(_sources(me), k=k))
                    if _sources(me) else Missing("MIA needs forget and holdout texts"))
    if reference is None or isinstance(own, Missing):
        return own
    ref = mia_of(reference)
    ref_nll = None if isinstance(ref, Missing) else ref.nll
    return me.cached(("mia", "reference"), lambda: MiaResult.of(
        attack_scores(_sources(me), k=k, reference_nll=ref_nll)))


def run(ctx: Any) -> dict[str, Any]:
    mia = mia_of(ctx.me, ctx.ref)
    if isinstance(mia, Missing):
        return dict.fromkeys(("mia_auc", "mia_auc_by_source", "privleak", "privleak_by_attack"), mia)
    ref = None if ctx.ref is None else mia_of(ctx.ref)
    by_attack = mia.privleak(None if isinstance(ref, Missing) else ref)
    return {"mia_auc": mia.auc, "mia_auc_by_source": mia.by_source, "privleak": by_attack["loss"],
            "privleak_by_attack": by_attack, "curves": {"mia_roc": mia.roc}}


register(Measurement(
    "mia", keys=("mia_auc", "mia_auc_by_source", "privleak", "privleak_by_attack"), run=run,
    needs=("holdout",),
    columns=(Column("mia_auc.loss", "MIA AUC (LOSS)", "depth", "half", wide=True, summary=True),
             Column("mia_auc.min_k_plus_plus", "MIA Min-K%++", "depth", "half"),
             Column("mia_auc.reference", "MIA reference", "depth", "half"),
             Column("privleak", "PrivLeak %", "depth", "zero", wide=True)),
    doc="ROC AUC of telling forget texts from never-seen holdout texts by the model's loss "
        "(and by zlib, Min-K%, Min-K%++ and the retrain reference); 0.5 is chance. PrivLeak "
        "(MUSE) = (AUC' - AUC'_retrain) / AUC'_retrain in %, AUC' = 1 - AUC.",
))
