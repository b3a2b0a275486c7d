"""TOFU's forget quality: is the edited model's truth ratio distributed like the retrain model's?

Truth ratio (TOFU, Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs", eq. for
R_truth), per item with perturbed (wrong) answers ``a_1 .. a_m`` and a paraphrased right answer
``a~``, each probability length-normalised:

    R_truth = (1/m) * sum_j P(a_j | q)^(1/|a_j|)  /  P(a~ | q)^(1/|a~|)

``P(a | q)^(1/|a|) = exp(mean token log-prob of a)``, so the inputs are per-answer mean token
log-probs (`loka.verify.logprobs.mean_logprob`). This is the paper's arithmetic mean over the
perturbed answers; TOFU's code averages their mean log-probs first (a geometric mean), which is
never larger. A model that knows the fact gives ``R`` well below 1; one that never learned it
rates right and wrong answers alike. Forget quality is the KS-test p-value between the edited
and the retrain model's truth ratios on the forget set: high means indistinguishable.

Example:
    >>> truth_ratio(np.log([0.5]), np.log([[0.25, 0.125]]))   # ((.25 + .125) / 2) / .5
    array([0.375])
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float
from scipy.special import logsumexp
from scipy.stats import ks_2samp

from loka.verify.missing import Missing


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
