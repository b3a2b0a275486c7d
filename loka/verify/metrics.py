"""The verifier's metric core: pure functions from logits, token ids, masks or per-item scores.

One import for everything the verifier measures; each idea lives in its own module:
`logprobs` (token log-probs, NLL, perplexity), `accuracy`, `mia` (membership inference and
PrivLeak), `truth_ratio` (TOFU forget quality), `extraction` (verbatim memorisation), `grades`
(the seed's `UnlearningEvaluation`). Values that cannot be computed are `Missing(reason)`;
`jsonable` makes any result JSON-ready (see `loka.verify.missing`).

Example:
    >>> forget = token_logprobs(forget_logits, forget_ids, forget_mask)      # members
    >>> holdout = token_logprobs(holdout_logits, holdout_ids, holdout_mask)  # non-members
    >>> auc = mia_auc(loss_score(forget), loss_score(holdout))
    >>> jsonable({"mia_auc": auc, "privleak": privleak(auc, retrain_auc)})
"""

from loka.verify.accuracy import accuracy, first_token_correct, greedy_exact_match
from loka.verify.extraction import (
    exact_token_match_rate,
    extraction_strength,
    lcs_length,
    longest_common_prefix,
    rouge_l_f1,
)
from loka.verify.grades import UnlearningEvaluation
from loka.verify.logprobs import (
    TokenLogprobs,
    logits_at,
    mean_logprob,
    mean_nll,
    perplexity,
    token_logprobs,
)
from loka.verify.mia import (
    RocCurve,
    loss_score,
    mia_auc,
    mia_roc,
    min_k_plus_plus_score,
    min_k_plus_plus_z,
    min_k_score,
    privleak,
    reference_score,
    zlib_score,
)
from loka.verify.missing import Missing, jsonable
from loka.verify.truth_ratio import forget_quality, truth_ratio

__all__ = [
    "Missing",
    "RocCurve",
    "TokenLogprobs",
    "UnlearningEvaluation",
    "accuracy",
    "exact_token_match_rate",
    "extraction_strength",
    "first_token_correct",
    "forget_quality",
    "greedy_exact_match",
    "jsonable",
    "lcs_length",
    "logits_at",
    "longest_common_prefix",
    "loss_score",
    "mean_logprob",
    "mean_nll",
    "mia_auc",
    "mia_roc",
    "min_k_plus_plus_score",
    "min_k_plus_plus_z",
    "min_k_score",
    "perplexity",
    "privleak",
    "reference_score",
    "rouge_l_f1",
    "token_logprobs",
    "truth_ratio",
    "zlib_score",
]
