"""The seed's `UnlearningEvaluation` grades, from forget/retain accuracy and the LOSS MIA AUC.

Forget quality "excellent" if forget accuracy < 0.1 and retain accuracy > 0.9, "good" if < 0.3
and > 0.8, else "insufficient"; privacy leakage from |AUC - 0.5|: < 0.05 minimal, < 0.15
moderate, else significant. They read only output accuracy and one AUC, so they cannot tell
suppression from removal — the report's caveats say so.

Example:
    >>> UnlearningEvaluation(0.05, 0.95, 0.52).to_dict()["forget_quality"]
    'excellent'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from loka.verify.missing import Missing, numbers
from loka.verify.registry import Column, Measurement, register

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
        return {"forget_accuracy": float(self.forget_accuracy),
                "retain_accuracy": float(self.retain_accuracy),
                "membership_inference_auc": float(self.membership_inference_auc),
                "forget_quality": self.forget_quality, "privacy_leakage": self.privacy_leakage}


def run(ctx: Any) -> dict[str, Any]:
    v = ctx.values
    aucs = v.get("mia_auc")
    auc = aucs if isinstance(aucs, Missing) else (aucs or {}).get("loss", Missing("no LOSS AUC"))
    forget, retain = v.get("forget_accuracy"), v.get("retain_accuracy")
    got = numbers({"forget": forget, "retain": retain, "auc": auc}, "forget", "retain", "auc")
    if got is None:
        first = next(v for v in (forget, retain, auc) if not isinstance(v, (int, float)))
        reason = first.reason if isinstance(first, Missing) else "not measured"
        return {"grades": Missing(f"grades need forget/retain accuracy and the LOSS MIA AUC: {reason}")}
    return {"grades": UnlearningEvaluation(*got).to_dict()}


register(Measurement(
    "grades", keys=("grades",), run=run,
    columns=(Column("grades.forget_quality", "forget grade", "outcome", wide=True, summary=True),
             Column("grades.privacy_leakage", "privacy grade", "depth", wide=True, summary=True)),
    doc="The seed's grades: forget quality from output accuracy, privacy from the LOSS MIA AUC.",
))
