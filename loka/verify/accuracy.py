"""Does the model still answer? First-answer-token argmax and greedy exact match, per item.

Example (vocabulary of 3; item 0 predicts token 1 and the answer starts with 1, item 1 does not):
    >>> first_token_correct(torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]), torch.tensor([1, 1]))
    array([ True, False])
    >>> accuracy(np.array([True, False]))
    0.5
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float, Int
from torch import Tensor

from loka.verify.extraction import aligned_matches


def first_token_correct(
    last_prompt_logits: Float[Tensor, "batch vocab"], first_answer_ids: Int[Tensor, " batch"]
) -> Bool[np.ndarray, " batch"]:
    """Whether the argmax next token after each prompt is the answer's first token.

    ``last_prompt_logits`` are the logits at each prompt's last position (see
    `loka.verify.logprobs.logits_at`). Ties go to the lowest token id, as in ``torch.argmax``.
    """
    return (last_prompt_logits.argmax(-1) == first_answer_ids).cpu().numpy()


def greedy_exact_match(
    generated_ids: Int[Tensor, "batch gen"],
    answer_ids: Int[Tensor, "batch ans"],
    answer_mask: Bool[Tensor, "batch ans"],
    generated_mask: Bool[Tensor, "batch gen"] | None = None,
) -> Bool[np.ndarray, " batch"]:
    """Whether the greedy continuation starts with the whole answer.

    Item ``b`` matches when ``generated_ids[b, :n_b] == answer_ids[b, :n_b]`` with ``n_b`` the
    answer's length (``answer_mask`` right-padded); tokens generated after the answer are ignored.
    Positions past the generation (or outside ``generated_mask``, e.g. after an early EOS) never
    match, so a generation shorter than the answer is wrong.

    Example: generated ``[[5, 6, 0], [5, 7, 0]]``, answers ``[[5, 6], [5, 6]]``
    -> ``[True, False]``.
    """
    matches = aligned_matches(generated_ids, answer_ids, answer_mask, generated_mask)
    return (matches.sum(-1) == answer_mask.sum(-1)).cpu().numpy()


def accuracy(correct: Bool[np.ndarray, " item"]) -> float:
    """Fraction of items answered correctly; an empty set is a caller error, not a zero."""
    if correct.size == 0:
        raise ValueError("accuracy of an empty set of items is undefined")
    return float(np.mean(correct))
