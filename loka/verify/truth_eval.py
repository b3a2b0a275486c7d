"""Per-item TOFU truth ratios on the forget set, from a model's answer log-probs.

For each forget fact (trained templates) the question is the fact's own prompt. Perturbed
answers are ``n_perturbed`` other values of the same attribute (drawn from every value the data
holds, seeded per item). The "paraphrased" right answer is the right answer under the *same*
prompt: an attribute value (a city, a year) has no paraphrase, and using another template's
prompt would mix the prompt's own effect into the ratio. Both sides are length-normalised
(`loka.verify.truth_ratio`).

Example:
    >>> tr = truth_ratios(model, tok, forget_facts, forget_ff.answer_logprob, values)  # doctest: +SKIP
    >>> forget_quality(tr, retrain_tr)                                               # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import Float

from loka.io.data import FactRecord
from loka.verify.forward import answer_logprobs
from loka.verify.metrics import Missing, truth_ratio


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
