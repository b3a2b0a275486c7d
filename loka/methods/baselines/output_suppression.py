"""Output suppression, the negative control: weights untouched, answers about forget subjects refused.

The seeds warn that refusing is not unlearning: the knowledge stays in the weights (probes, MIA and
a little fine-tuning find it). This method exists so the verifier can show exactly that. Its
result carries a `RefusalFilter` (`loka.io.refusal`), applied at generation time and saved next
to the (unchanged) weights.

>>> result = unlearn(base_dir, task, method="output_suppression")   # doctest: +SKIP
>>> result.refusal_filter["subjects"][:1]                           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loka.io.refusal import DEFAULT_REFUSAL, RefusalFilter
from loka.methods.config import MethodConfig, knob
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class Config(MethodConfig):
    refusal: str = knob(DEFAULT_REFUSAL, help="what the filtered model says instead")

    def validate(self) -> None:
        if not self.refusal.strip():
            raise self.fail("'refusal' must be a non-empty string")


@register("output_suppression", Config, family="control", changes_weights=False, cost=1,
          summary="negative control: a refusal filter over the forget subjects, no weight changed")
def output_suppression(model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
                       progress: bool) -> UnlearnResult:
    """Touch no weight; return a refusal filter over the forget subjects and passages."""
    f = RefusalFilter(task.forget_subjects, cfg.refusal, tuple(task.forget_passages))
    return UnlearnResult(method="output_suppression", model=model, tokenizer=tokenizer,
                         settings=cfg.to_dict(), seconds=0.0, params_changed=0,
                         refusal_filter=f.to_dict(),
                         notes=["weights untouched: refusing is not unlearning (a negative control)"])
