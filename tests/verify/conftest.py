"""Fixture `hand_batch`: a batch whose every token probability is known, for the metric tests.

Vocabulary of 3. Two next-token distributions, written as logits = log p:
    A = (0.5, 0.25, 0.25)  ->  log p = (-ln 2, -2 ln 2, -2 ln 2);  mu = -1.5 ln 2, sigma = 0.5 ln 2
    B = (0.8, 0.1, 0.1)    ->  mu = 0.8 ln .8 + 0.2 ln .1,  sigma = 0.4 * ln 8 (two-valued)
Min-K%++ z for a two-valued distribution is +sqrt((1-p)/p) for the likely token and
-sqrt(p/(1-p)) for the others: A gives +1 / -1, B gives +0.5 / -2.

Row 0, ids [0, 1, 0, 2, 0]; logits at positions 0..3 are A, B, B, A (position 4 is never used):
    target 1 under A: p .25, z -1 | target 0 under B: p .8, z +.5
    target 2 under B: p .1,  z -2 | target 0 under A: p .5, z +1
    sum log p = ln(.25 * .8 * .1 * .5) = ln .01 = -4.605170186
Row 1, ids [0, 0, pad...]: one scored token, target 0 under A (p .5, z +1); its padding
positions have NaN logits, which must never leak into any score.
"""

import math

import pytest
import torch

A = [0.5, 0.25, 0.25]
B = [0.8, 0.1, 0.1]
PAD = 2


@pytest.fixture
def hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits [2 5 3], input_ids [2 5], mask [2 5]) as in the module doc."""
    row0 = [A, B, B, A, A]
    row1 = [A] + [[math.nan] * 3] * 4
    logits = torch.tensor([row0, row1]).log()
    input_ids = torch.tensor([[0, 1, 0, 2, 0], [0, 0, PAD, PAD, PAD]])
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    return logits, input_ids, mask
