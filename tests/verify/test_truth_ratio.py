import math

import numpy as np
import pytest

from loka.verify.measurements.truth_ratio import forget_quality, truth_ratio
from loka.verify.missing import Missing


def test_truth_ratio_hand():
    paraphrased = np.log([0.5, 0.2])
    perturbed = np.log([[0.25, 0.125], [0.2, 0.2]])
    # item 0: ((.25 + .125) / 2) / .5 = .375; item 1: .2 / .2 = 1
    np.testing.assert_allclose(truth_ratio(paraphrased, perturbed), [0.375, 1.0], rtol=1e-12)


def test_truth_ratio_is_length_normalised_probability():
    # An answer of 4 tokens with P = .0016 has P^(1/4) = .2; one of 2 tokens with P = .16 has .4.
    paraphrased = np.array([math.log(0.16) / 2])
    perturbed = np.array([[math.log(0.0016) / 4]])
    assert truth_ratio(paraphrased, perturbed)[0] == pytest.approx(0.5)


def test_truth_ratio_survives_tiny_probabilities():
    # exp(-800) underflows; in log space: mean(e^-1, e^-2) = (.36787944 + .13533528) / 2
    out = truth_ratio(np.array([-800.0]), np.array([[-801.0, -802.0]]))
    assert out[0] == pytest.approx(0.25160736, rel=1e-7)


def test_forget_quality_ks_pvalue():
    a = np.linspace(0.0, 1.0, 20)
    assert forget_quality(a, a.copy()) == 1.0
    assert forget_quality(a, a + 10.0) < 1e-9  # disjoint samples of 20: p ~ 1.45e-11


def test_forget_quality_without_retrain_is_missing():
    assert isinstance(forget_quality(np.ones(3), None), Missing)
    nan = forget_quality(np.array([0.5, math.nan]), np.ones(3))
    assert isinstance(nan, Missing) and "unlearned" in nan.reason
    with pytest.raises(ValueError):
        forget_quality(np.zeros(0), np.ones(3))
