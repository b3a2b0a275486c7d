"""TOFU's truth ratio and forget quality: is the edited model's truth ratio distributed like retrain's?

Truth ratio (TOFU, Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs", eq. for
R_truth), per item with perturbed (wrong) answers ``a_1 .. a_m`` and a paraphrased right answer
``a~``, each probability length-normalised:

    R_truth = (1/m) * sum_j P(a_j | q)^(1/|a_j|)  /  P(a~ | q)^(1/|a~|)

``P(a | q)^(1/|a|) = exp(mean token log-prob of a)``, so the inputs are per-answer mean token
log-probs. This is the paper's arithmetic mean over the perturbed answers; TOFU's code averages
their mean log-probs first (a geometric mean), which is never larger. A model that knows the
fact gives ``R`` well below 1; one that never learned it rates right and wrong answers alike.
Forget quality is the KS-test p-value between the edited and the retrain model's truth ratios
on the forget set: high means indistinguishable.

For each forget fact (trained templates) the question is the fact's own prompt. Perturbed
answers are ``n_perturbed`` other values of the same attribute (drawn from every value the data
holds, seeded per item). The "paraphrased" right answer is the right answer under the *same*
prompt: an attribute value (a city, a year) has no paraphrase, and using another template's
prompt would mix the prompt's own effect into the ratio.

Example:
    >>> truth_ratio(np.log([0.5]), np.log([[0.25, 0.125]]))   # ((.25 + .125) / 2) / .5
    array([0.375])
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import Float
from scipy.special import logsumexp
from scipy.stats import ks_2samp

from loka.io.data import FactRecord
from loka.verify.forward import answer_logprobs
from loka.verify.missing import Missing, finite_or_missing
from loka.verify.registry import Column, Measurement, register


def truth_ratio(
    paraphrased_logprob: Float[np.ndarray, " item"],
    perturbed_logprob: Float[np.ndarray, "item n_perturbed"],
) -> Float[np.ndarray, " item"]:
    """Per-item TOFU truth ratio from length-normalised log-probs (formula in the module doc)."""
    if perturbed_logprob.shape[1] == 0:
        raise ValueError("the truth ratio needs at least one perturbed answer per item")
    # log-space: exp of very negative mean log-probs would underflow before the division.
    diff = perturbed_logprob - paraphrased_logprob[:, None]
    log_ratio = logsumexp(diff, axis=1) - np.log(perturbed_logprob.shape[1])
    return np.exp(log_ratio).astype(np.float64)


def forget_quality(
    unlearned_truth_ratio: Float[np.ndarray, " item"],
    retrain_truth_ratio: Float[np.ndarray, " item_retrain"] | Missing | None,
) -> float | Missing:
    """p-value of ``scipy.stats.ks_2samp`` between the two models' per-item truth ratios.

    Example: identical samples give 1.0; ``ks_2samp`` of [0..1] vs [10..11] gives ~1e-11.
    """
    if retrain_truth_ratio is None:
        return Missing("no retrain model: forget quality compares with the retrain model")
    if isinstance(retrain_truth_ratio, Missing):
        return retrain_truth_ratio
    if unlearned_truth_ratio.size == 0 or retrain_truth_ratio.size == 0:
        raise ValueError("forget quality needs at least one forget item per model")
    for name, values in (("unlearned", unlearned_truth_ratio), ("retrain", retrain_truth_ratio)):
        if not np.isfinite(values).all():
            return Missing(f"non-finite truth ratios for the {name} model")
    return float(ks_2samp(unlearned_truth_ratio, retrain_truth_ratio).pvalue)


def perturbed_answers(facts: Sequence[FactRecord], values: Mapping[str, Sequence[str]],
                      n_perturbed: int, seed: int = 0) -> list[list[str]] | Missing:
    """``n_perturbed`` wrong values of each fact's attribute (fewer only if fewer exist)."""
    out = []
    for i, f in enumerate(facts):
        wrong = [v for v in values.get(f.attribute, ()) if v != f.answer]
        if not f.attribute or not wrong:
            return Missing("facts need an attribute with other values to draw wrong answers from")
        rng = random.Random(f"{seed}-{i}-{f.prompt}")
        out.append(rng.sample(wrong, min(n_perturbed, len(wrong))))
    if len({len(w) for w in out}) != 1:
        n = min(len(w) for w in out)
        out = [w[:n] for w in out]
    return out


def truth_ratios(model: Any, tokenizer: Any, facts: Sequence[FactRecord],
                 right_logprob: Float[np.ndarray, " item"], values: Mapping[str, Sequence[str]],
                 *, n_perturbed: int = 5, seed: int = 0) -> Float[np.ndarray, " item"] | Missing:
    """TOFU truth ratio per fact; ``right_logprob`` is the right answer's mean token log-prob."""
    wrong = perturbed_answers(facts, values, n_perturbed, seed)
    if isinstance(wrong, Missing):
        return wrong
    m = len(wrong[0])
    prompts = [f.prompt for f in facts for _ in range(m)]
    flat = answer_logprobs(model, tokenizer, prompts, [w for ws in wrong for w in ws])
    return truth_ratio(np.asarray(right_logprob, dtype=np.float64), flat.reshape(len(facts), m))


def truth_ratios_of(me: Any) -> np.ndarray | Missing:
    """A model's per-item truth ratios on the forget facts (cached)."""
    ff = me.facts("forget")
    if ff is None:
        return Missing("no forget facts")
    m, s = me.model, me.settings
    return me.cached("truth", lambda: truth_ratios(
        m.model, m.tokenizer, me.data.fact_set("forget"), ff.answer_logprob,
        me.data.attribute_values(), n_perturbed=s.n_perturbed, seed=s.seed))


def run(ctx: Any) -> dict[str, Any]:
    tr = truth_ratios_of(ctx.me)
    ref_tr = None if ctx.ref is None else truth_ratios_of(ctx.ref)
    median = lambda x: x if isinstance(x, Missing) else finite_or_missing(np.median(x), "median truth ratio")  # noqa: E731
    summary = {"median": median(tr), "retrain_median": Missing("no retrain model") if ref_tr is None
               else median(ref_tr), "n_items": 0 if isinstance(tr, Missing) else int(tr.size)}
    return {"forget_quality": tr if isinstance(tr, Missing) else forget_quality(tr, ref_tr),
            "truth_ratio": summary}


register(Measurement(
    "truth_ratio", keys=("forget_quality", "truth_ratio"), run=run, needs=("forget_facts",),
    columns=(Column("forget_quality", "KS forget quality p", "depth", "higher", wide=True),),
    doc="TOFU forget quality: KS-test p-value between this model's and the retrain model's "
        "truth ratios on the forget facts; high = indistinguishable from never having learned them.",
))
