"""The seed's `UnlearningEvaluation`: three numbers and the two verdicts drawn from them.

Thresholds are the seed's, unchanged (strict inequalities, tested at the boundaries):
forget quality "excellent" if forget < 0.1 and retain > 0.9, "good" if forget < 0.3 and
retain > 0.8, else "insufficient"; privacy leakage from ``|AUC - 0.5|``: < 0.05 "minimal",
< 0.15 "moderate", else "significant". (This grade is not TOFU's KS forget quality.)

Example:
    >>> UnlearningEvaluation(0.08, 0.92, 0.53).to_dict()
    {'forget_accuracy': 0.08, 'retain_accuracy': 0.92, 'membership_inference_auc': 0.53,
     'forget_quality': 'excellent', 'privacy_leakage': 'minimal'}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ForgetGrade = Literal["excellent", "good", "insufficient"]
PrivacyGrade = Literal["minimal", "moderate", "significant"]


@dataclass(frozen=True)
class UnlearningEvaluation:
    """Evaluate the quality of machine unlearning (from the seed; fields validated in [0, 1])."""

    forget_accuracy: float  # lower is better (model forgot)
    retain_accuracy: float  # higher is better (model remembers)
    membership_inference_auc: float  # closer to 0.5 is better

    def __post_init__(self) -> None:
        # The seed takes any float; a NaN would silently grade as "insufficient"/"significant".
        for name in ("forget_accuracy", "retain_accuracy", "membership_inference_auc"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a finite number in [0, 1], got {value}")

    @property
    def forget_quality(self) -> ForgetGrade:
        if self.forget_accuracy < 0.1 and self.retain_accuracy > 0.9:
            return "excellent"
        elif self.forget_accuracy < 0.3 and self.retain_accuracy > 0.8:
            return "good"
        return "insufficient"

    @property
    def privacy_leakage(self) -> PrivacyGrade:
        deviation = abs(self.membership_inference_auc - 0.5)
        if deviation < 0.05:
            return "minimal"
        elif deviation < 0.15:
            return "moderate"
        return "significant"

    def to_dict(self) -> dict[str, float | str]:
        return {
            "forget_accuracy": float(self.forget_accuracy),
            "retain_accuracy": float(self.retain_accuracy),
            "membership_inference_auc": float(self.membership_inference_auc),
            "forget_quality": self.forget_quality,
            "privacy_leakage": self.privacy_leakage,
        }
