"""Output suppression as the verifier sees it: generations replaced by a refusal, weights untouched.

A refusal filter (``UnlearnResult.refusal_filter`` of ``output_suppression``) names the forget
``subjects`` and a ``refusal`` string. Any prompt that mentions a subject is answered with the
refusal; every other prompt gets the model's own answer. Behavioural metrics (accuracy) see the
filter; logits-based ones (MIA, truth ratio, probes, relearning) see the real weights, which is
exactly how the verifier exposes suppression that only looks like forgetting.

Example:
    >>> f = RefusalFilter(("Mira Coltan",), "I cannot share that.")
    >>> f.refuses("Mira Coltan was born in"), f.refuses("Osric Pell was born in")
    (True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Bool


@dataclass(frozen=True)
class RefusalFilter:
    """Prompts mentioning one of ``subjects`` are answered with ``refusal``."""

    subjects: tuple[str, ...]
    refusal: str = "I cannot help with that."

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> RefusalFilter:
        subjects = tuple(s for s in spec.get("subjects", ()) if s)
        if not subjects:
            raise ValueError("a refusal filter needs at least one subject")
        return cls(subjects, str(spec.get("refusal") or cls.refusal))

    def refuses(self, prompt: str) -> bool:
        return any(s in prompt for s in self.subjects)

    def refused(self, prompts: Sequence[str]) -> Bool[np.ndarray, " item"]:
        return np.array([self.refuses(p) for p in prompts], dtype=bool)

    def answer_correct(self, tokenizer: Any, answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For refused items: (first token right, whole answer right) when the refusal is the output.

        The refusal is what the model emits after the prompt, tokenised like an answer (``" " +
        refusal``); it is "right" only if it happens to start with the answer's tokens.
        """
        out = list(tokenizer(" " + self.refusal, add_special_tokens=False)["input_ids"])
        first, whole = [], []
        for answer in answers:
            ids = list(tokenizer(" " + answer, add_special_tokens=False)["input_ids"])
            first.append(bool(out) and out[0] == ids[0])
            whole.append(out[: len(ids)] == ids)
        return np.array(first, dtype=bool), np.array(whole, dtype=bool)
