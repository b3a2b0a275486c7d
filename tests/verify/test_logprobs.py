import math

import numpy as np
import pytest
import torch

from loka.verify.logprobs import logits_at_rows, mean_logprob, mean_nll, perplexity, scored_logprobs
from loka.verify.missing import Missing


def test_token_logprobs_hand_values(hand_batch):
    tl = scored_logprobs(*hand_batch)
    # ln .25, ln .8, ln .1, ln .5 for row 0; row 1 only its first target (ln .5) is scored.
    expected0 = [-1.3862944, -0.2231436, -2.3025851, -0.6931472]
    np.testing.assert_allclose(tl.logprobs[0].numpy(), expected0, atol=1e-6)
    assert tl.logprobs[1, 0].item() == pytest.approx(-0.6931472, abs=1e-6)
    assert tl.mask.tolist() == [[True] * 4, [True, False, False, False]]


def test_mean_nll_ignores_padding_even_nan(hand_batch):
    tl = scored_logprobs(*hand_batch)
    # row 0: -ln(.01) / 4 = 4.605170186 / 4; row 1: ln 2
    np.testing.assert_allclose(mean_nll(tl), [1.1512925465, 0.6931471806], atol=1e-6)
    np.testing.assert_allclose(mean_logprob(tl), -mean_nll(tl))


def test_perplexity_is_token_weighted(hand_batch):
    tl = scored_logprobs(*hand_batch)
    # total NLL = ln 100 + ln 2 = ln 200 over 5 tokens -> 200 ** (1/5)
    assert perplexity(tl) == pytest.approx(2.8853998118, abs=1e-5)


def test_perplexity_of_uniform_model_is_vocab_size():
    ids = torch.tensor([[0, 1, 2, 3]])
    tl = scored_logprobs(torch.zeros(1, 4, 7), ids, torch.ones(1, 4, dtype=torch.bool))
    assert perplexity(tl) == pytest.approx(7.0, rel=1e-6)


def test_nan_logits_on_a_scored_token_give_missing_not_nan(hand_batch):
    logits, ids, mask = hand_batch
    logits[0, 1] = math.nan
    result = perplexity(scored_logprobs(logits, ids, mask))
    assert isinstance(result, Missing) and "not finite" in result.reason


def test_row_without_scored_tokens_is_an_error(hand_batch):
    logits, ids, mask = hand_batch
    mask[1] = torch.tensor([True, False, False, False, False])  # only the unscorable first token
    with pytest.raises(ValueError, match="no scored tokens"):
        mean_nll(scored_logprobs(logits, ids, mask))


def test_logits_at_picks_each_rows_position():
    logits = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    out = logits_at_rows(logits, torch.tensor([2, 0]))
    assert out.tolist() == [[4.0, 5.0], [6.0, 7.0]]


def test_shapes_are_checked():
    with pytest.raises(TypeError, match="input_ids"):  # jaxtyping: pos disagrees
        scored_logprobs(
            torch.zeros(1, 4, 3),
            torch.zeros(1, 5, dtype=torch.long),
            torch.ones(1, 5, dtype=torch.bool),
        )
