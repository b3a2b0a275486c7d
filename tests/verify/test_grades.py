import itertools

import pytest

from loka.verify.measurements.grades import UnlearningEvaluation


class SeedEvaluation:
    """The seed's code, verbatim (seeds/000), as the oracle for the thresholds."""

    def __init__(self, forget_accuracy, retain_accuracy, membership_inference_auc):
        self.forget_accuracy = forget_accuracy
        self.retain_accuracy = retain_accuracy
        self.membership_inference_auc = membership_inference_auc

    @property
    def forget_quality(self) -> str:
        if self.forget_accuracy < 0.1 and self.retain_accuracy > 0.9:
            return "excellent"
        elif self.forget_accuracy < 0.3 and self.retain_accuracy > 0.8:
            return "good"
        return "insufficient"

    @property
    def privacy_leakage(self) -> str:
        deviation = abs(self.membership_inference_auc - 0.5)
        if deviation < 0.05:
            return "minimal"
        elif deviation < 0.15:
            return "moderate"
        return "significant"


ACC = [
    0.0,
    0.0999999,
    0.1,
    0.1000001,
    0.2999999,
    0.3,
    0.3000001,
    0.8,
    0.8000001,
    0.9,
    0.9000001,
    1.0,
]
AUC = [0.0, 0.35, 0.3500001, 0.45, 0.4500001, 0.5, 0.5499999, 0.55, 0.65, 0.6500001, 1.0]


def test_grades_equal_the_seeds_on_a_boundary_grid():
    for f, r, a in itertools.product(ACC, ACC, AUC):
        ours, seed = UnlearningEvaluation(f, r, a), SeedEvaluation(f, r, a)
        assert (ours.forget_quality, ours.privacy_leakage) == (
            seed.forget_quality,
            seed.privacy_leakage,
        )


@pytest.mark.parametrize(
    ("forget", "retain", "grade"),
    [
        (0.08, 0.92, "excellent"),  # the seed's own example
        (0.1, 0.95, "good"),  # forget not < 0.1
        (0.05, 0.9, "good"),  # retain not > 0.9
        (0.29, 0.81, "good"),
        (0.3, 0.95, "insufficient"),  # forget not < 0.3
        (0.05, 0.8, "insufficient"),  # retain not > 0.8
    ],
)
def test_forget_quality_boundaries(forget, retain, grade):
    assert UnlearningEvaluation(forget, retain, 0.5).forget_quality == grade


@pytest.mark.parametrize(
    ("auc", "grade"),
    [
        (0.53, "minimal"),  # the seed's example
        (0.5, "minimal"),
        # |0.55 - 0.5| is 0.050000000000000044 in floating point: not < 0.05, as in the seed
        (0.55, "moderate"),
        # |0.45 - 0.5| is 0.04999999999999999: the seed calls this minimal, and so do we
        (0.45, "minimal"),
        (0.64, "moderate"),
        (0.66, "significant"),
        (0.2, "significant"),
        (1.0, "significant"),
    ],
)
def test_privacy_leakage_boundaries(auc, grade):
    assert UnlearningEvaluation(0.0, 1.0, auc).privacy_leakage == grade


def test_to_dict_and_validation():
    assert UnlearningEvaluation(0.08, 0.92, 0.53).to_dict() == {
        "forget_accuracy": 0.08,
        "retain_accuracy": 0.92,
        "membership_inference_auc": 0.53,
        "forget_quality": "excellent",
        "privacy_leakage": "minimal",
    }
    with pytest.raises(ValueError, match="membership_inference_auc"):
        UnlearningEvaluation(0.1, 0.9, float("nan"))
    with pytest.raises(ValueError, match="forget_accuracy"):
        UnlearningEvaluation(1.5, 0.9, 0.5)
    with pytest.raises(AttributeError):
        UnlearningEvaluation(0.1, 0.9, 0.5).forget_accuracy = 0.0  # frozen
