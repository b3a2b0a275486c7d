"""Does the model still answer? First-answer-token accuracy and greedy exact match per fact set.

First-token accuracy (the headline) is `loka.evaluate.first_token_hits` at each prompt's end;
greedy exact match needs no generation: greedy decoding reproduces the answer exactly when every
answer token is the argmax given the prompt and the answer's previous tokens, which is what one
teacher-forced pass shows. A refusal filter answers the prompts it refuses with its refusal.

Example (answers ``[5, 6]`` twice; generated ``[5, 6, 0]`` and ``[5, 7, 0]``):
    >>> ids, mask = torch.tensor([[5, 6], [5, 6]]), torch.ones(2, 2, dtype=torch.bool)
    >>> greedy_exact_match(torch.tensor([[5, 6, 0], [5, 7, 0]]), ids, mask)
    array([ True, False])
    >>> accuracy(np.array([True, False]))
    0.5
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Bool, Int
from torch import Tensor

from loka.verify.measurements.extraction import aligned_matches
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register

SPLITS = ("forget", "retain_eval", "holdout")


def greedy_exact_match(
    generated_ids: Int[Tensor, "batch gen"],
    answer_ids: Int[Tensor, "batch ans"],
    answer_mask: Bool[Tensor, "batch ans"],
    generated_mask: Bool[Tensor, "batch gen"] | None = None,
) -> Bool[np.ndarray, " batch"]:
    """Whether the greedy continuation starts with the whole answer (tokens after it ignored).

    Positions past the generation (or outside ``generated_mask``) never match, so a generation
    shorter than the answer is wrong.
    """
    matches = aligned_matches(generated_ids, answer_ids, answer_mask, generated_mask)
    return (matches.sum(-1) == answer_mask.sum(-1)).cpu().numpy()


def accuracy(correct: Bool[np.ndarray, " item"]) -> float:
    """Fraction of items answered correctly; an empty set is a caller error, not a zero."""
    if correct.size == 0:
        raise ValueError("accuracy of an empty set of items is undefined")
    return float(np.mean(correct))


def accuracy_table(me: Any) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{split: {template kind: {first_token, greedy, n}}}`` of a model's `Measurements`."""
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    refusal = me.model.refusal
    for split, kind in me.data.facts:
        if split not in SPLITS:  # retain_train is not reported: no forward pass over it
            continue
        ff, facts = me.facts(split, kind), me.data.fact_set(split, kind)
        if ff is None:
            continue
        first, greedy = ff.first_token.copy(), ff.greedy.copy()
        if refusal is not None:
            refused = refusal.refused([f.prompt for f in facts])
            r_first, r_greedy = refusal.answer_correct(me.model.tokenizer, [f.answer for f in facts])
            first[refused], greedy[refused] = r_first[refused], r_greedy[refused]
        out.setdefault(split, {})[kind] = {"first_token": accuracy(first), "greedy": accuracy(greedy),
                                           "n": len(facts)}
    return out


def accuracy_of(acc: dict[str, Any], split: str, kind: str = "train") -> float | Missing:
    """First-token accuracy of one fact set, or why there is none.

    >>> accuracy_of({"forget": {"train": {"first_token": 0.9}}}, "forget")
    0.9
    >>> accuracy_of({}, "holdout")
    Missing(reason='no holdout facts (train templates)')
    """
    try:
        return float(acc[split][kind]["first_token"])
    except KeyError:
        return Missing(f"no {split} facts ({kind} templates)")


def run(ctx: Any) -> dict[str, Any]:
    acc = accuracy_table(ctx.me)
    return {"forget_accuracy": accuracy_of(acc, "forget"),
            "retain_accuracy": accuracy_of(acc, "retain_eval"),
            "holdout_accuracy": accuracy_of(acc, "holdout"), "accuracy": acc}


register(Measurement(
    "accuracy", keys=("forget_accuracy", "retain_accuracy", "holdout_accuracy", "accuracy"), run=run,
    needs=("forget_facts",),
    columns=(Column("forget_accuracy", "forget", "outcome", "lower", wide=True, summary=True),
             Column("retain_accuracy", "retain-eval", "outcome", "higher", wide=True, summary=True),
             Column("holdout_accuracy", "holdout", "outcome", wide=True)),
    doc="First-answer-token accuracy on the forget facts, on retain-eval facts (people no method "
        "saw) and on holdout people (never trained: chance level).",
))
