import math
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score

from loka.verify.logprobs import scored_logprobs
from loka.verify.measurements.mia import (
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
from loka.verify.missing import Missing

LN = {p: math.log(p) for p in (0.1, 0.25, 0.5, 0.8)}


def test_loss_score_is_minus_mean_nll(hand_batch):
    scores = loss_score(scored_logprobs(*hand_batch))
    np.testing.assert_allclose(scores, [math.log(0.01) / 4, LN[0.5]], atol=1e-6)


def test_zlib_score_hand(hand_batch):
    texts = ["abcabcabc", "x"]
    # zlib.compress gives 13 and 9 bytes for these (checked, not derived from the code under test)
    assert [len(zlib.compress(t.encode())) for t in texts] == [13, 9]
    scores = zlib_score(scored_logprobs(*hand_batch), texts)
    np.testing.assert_allclose(scores, [-1.1512925465 / 13, -0.6931471806 / 9], atol=1e-6)


@pytest.mark.parametrize(
    ("k", "row0"),
    [
        (0.4, LN[0.1]),  # int(4 * .4) = 1 token: the lowest, ln .1
        (0.5, (LN[0.1] + LN[0.25]) / 2),  # 2 lowest
        (1.0, math.log(0.01) / 4),  # all four: the LOSS score
        (0.1, LN[0.1]),  # int(.4) = 0 -> at least one token
    ],
)
def test_min_k_hand(k, row0, hand_batch):
    scores = min_k_score(scored_logprobs(*hand_batch), k=k)
    np.testing.assert_allclose(scores, [row0, LN[0.5]], atol=1e-6)


def test_min_k_plus_plus_z_on_three_token_vocab(hand_batch):
    logits, ids, _ = hand_batch
    z = min_k_plus_plus_z(logits, ids)
    # see tests/verify/hand.py: A -> +1 / -1, B -> +0.5 / -2
    np.testing.assert_allclose(z[0].numpy(), [-1.0, 0.5, -2.0, 1.0], atol=1e-5)
    assert z[1, 0].item() == pytest.approx(1.0, abs=1e-5)


def test_min_k_plus_plus_z_from_explicit_mu_sigma():
    # p = (.5, .25, .25): mu = .5 ln .5 + .5 ln .25 = -1.0397208; E[(log p)^2] = 1.2011325,
    # sigma = sqrt(1.2011325 - 1.0810193) = 0.3465736;
    # z(token 1) = (-1.3862944 + 1.0397208) / 0.3465736 = -1
    logits = torch.tensor([[[0.5, 0.25, 0.25], [1.0, 1.0, 1.0]]]).log()
    z = min_k_plus_plus_z(logits, torch.tensor([[0, 1]]))
    assert z.item() == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize(("k", "row0"), [(0.4, -2.0), (0.5, -1.5), (1.0, -0.375)])
def test_min_k_plus_plus_score_hand(k, row0, hand_batch):
    scores = min_k_plus_plus_score(*hand_batch, k=k)
    np.testing.assert_allclose(scores, [row0, 1.0], atol=1e-5)


def test_min_k_plus_plus_flat_distribution_is_zero_not_nan():
    z = min_k_plus_plus_z(torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]]))
    assert z.tolist() == [[0.0, 0.0]]


def test_min_k_rejects_bad_k(hand_batch):
    with pytest.raises(ValueError, match="fraction"):
        min_k_score(scored_logprobs(*hand_batch), k=0.0)


def test_reference_score_and_missing_retrain():
    np.testing.assert_allclose(
        reference_score(np.array([1.0, 2.0]), np.array([3.0, 1.5])), [2.0, -0.5]
    )
    missing = reference_score(np.array([1.0]), None)
    assert isinstance(missing, Missing)
    assert mia_auc(missing, np.array([0.1])) is missing  # a Missing flows through


def test_auc_hand():
    # pairs (member, non-member): .9>.1, .9>.8, .8>.1 win, .8=.8 tie -> (3 + .5) / 4
    assert mia_auc(np.array([0.9, 0.8]), np.array([0.1, 0.8])) == 0.875


def _mann_whitney_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """Independent AUC: P(member > non-member) + P(tie) / 2 over all pairs."""
    diff = members[:, None] - nonmembers[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def test_auc_matches_sklearn_and_mann_whitney_on_random_scores():
    rng = np.random.default_rng(0)
    for n1, n2 in [(1, 1), (5, 7), (50, 30), (200, 200)]:
        members = rng.normal(0.3, 1.0, n1)
        nonmembers = np.round(rng.normal(0.0, 1.0, n2), 1)  # rounding makes ties
        members[: n1 // 2] = np.round(members[: n1 // 2], 1)
        auc = mia_auc(members, nonmembers)
        y = np.r_[np.ones(n1), np.zeros(n2)]
        assert auc == pytest.approx(roc_auc_score(y, np.r_[members, nonmembers]), abs=1e-12)
        assert auc == pytest.approx(_mann_whitney_auc(members, nonmembers), abs=1e-12)
        u = mannwhitneyu(members, nonmembers, alternative="two-sided").statistic
        assert auc == pytest.approx(u / (n1 * n2), abs=1e-12)


def test_auc_degenerate_inputs():
    assert mia_auc(np.full(4, 0.3), np.full(6, 0.3)) == 0.5
    with pytest.raises(ValueError, match="members and non-members"):
        mia_auc(np.zeros(0), np.array([1.0]))
    with pytest.raises(ValueError, match="members and non-members"):
        mia_auc(np.array([1.0]), np.zeros(0))
    nan = mia_auc(np.array([1.0, math.nan]), np.array([0.0]))
    assert isinstance(nan, Missing) and "non-finite" in nan.reason


def test_roc_curve_points():
    roc = mia_roc(np.array([0.9, 0.8]), np.array([0.1, 0.8]))
    assert isinstance(roc, RocCurve) and roc.auc == 0.875
    # thresholds .9, .8, .1: (0, .5), (.5, 1), (1, 1) after the (0, 0) start
    assert roc.to_dict() == {"auc": 0.875, "fpr": [0.0, 0.0, 0.5, 1.0], "tpr": [0.0, 0.5, 1.0, 1.0]}


scores = st.lists(st.integers(-50, 50), min_size=1, max_size=30).map(np.array)


@settings(max_examples=50, deadline=None)
@given(scores, scores)
def test_auc_antisymmetric(s, t):
    assert mia_auc(s, t) == pytest.approx(1.0 - mia_auc(t, s), abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(scores, scores)
def test_auc_invariant_to_monotone_transforms(s, t):
    def f(x: np.ndarray) -> np.ndarray:
        return x**3 + 2 * x - 7  # strictly increasing on the integers

    assert mia_auc(f(s), f(t)) == pytest.approx(mia_auc(s, t), abs=1e-12)
    assert mia_auc(-s, -t) == pytest.approx(1.0 - mia_auc(s, t), abs=1e-12)


def test_privleak_hand_and_guards():
    # MUSE's orientation: AUC' = 1 - AUC (forget = non-members), PrivLeak = (AUC'_u - AUC'_r) / AUC'_r
    assert privleak(0.6, 0.5) == pytest.approx(-20.0)  # (.4 - .5) / .5 * 100: under-unlearned
    assert privleak(0.45, 0.9) == pytest.approx(450.0)  # (.55 - .1) / .1 * 100: over-unlearned
    assert privleak(1.0, 0.44) == pytest.approx(-100.0)  # knows everything: MUSE's target model, ~-100 %
    assert privleak(0.5, 0.5) == 0.0
    for retrain in (1.0, None, Missing("retrain diverged")):
        result = privleak(0.7, retrain)
        assert isinstance(result, Missing) and result.reason
    assert "denominator" in privleak(0.7, 1.0).reason
    assert "retrain diverged" in privleak(0.7, Missing("retrain diverged")).reason
    own = Missing("edited model diverged")
    assert privleak(own, 0.5) is own
