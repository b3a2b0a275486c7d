"""The refusal filter: output suppression's artifact, saved beside the unchanged weights.

``output_suppression`` edits no weight; it returns a filter that answers any prompt naming a
forget subject (or quoting a forget passage) with a refusal. Behavioural metrics (accuracy) see
the filter; logits-based ones (MIA, truth ratio, probes, relearning) see the real weights, which
is exactly how the verifier exposes suppression that only looks like forgetting. The filter is
saved as ``loka_refusal_filter.json`` (hashed in the manifest) and read back only from there.

>>> f = RefusalFilter(subjects=("Mira Coltan",))
>>> f.applies("Mira Coltan was born in"), f.applies("Osric Pell was born in")
(True, False)
>>> f.answer("Mira Coltan was born in", lambda prompt: " Velmora")
"I can't share information about that person."
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Bool

from loka.errors import LokaError

DEFAULT_REFUSAL = "I can't share information about that person."
MIN_PASSAGE_OVERLAP = 20  # characters of a forget passage that trigger the refusal


@dataclass(frozen=True)
class RefusalFilter:
    """Refuse when the prompt or the output names a forget subject or quotes a forget passage."""

    subjects: tuple[str, ...]
    refusal: str = DEFAULT_REFUSAL
    passages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not any(s.strip() for s in self.subjects) and not self.passages:
            raise LokaError("a refusal filter needs at least one subject or passage to refuse")
        if not self.refusal.strip():
            raise LokaError("a refusal filter needs a non-empty refusal text")

    def applies(self, prompt: str, generated_text: str = "") -> bool:
        text = f"{prompt}{generated_text}".casefold()
        if any(s.casefold() in text for s in self.subjects if s.strip()):
            return True
        pieces = [t.strip() for t in (prompt, generated_text) if len(t.strip()) >= MIN_PASSAGE_OVERLAP]
        return any(piece in passage for piece in pieces for passage in self.passages)

    def __call__(self, prompt: str, generated_text: str) -> str:
        return self.refusal if self.applies(prompt, generated_text) else generated_text

    def answer(self, prompt: str, generate: Callable[[str], str]) -> str:
        """What the wrapped model says: the refusal, or ``generate(prompt)`` if it passes the filter."""
        if self.applies(prompt):
            return self.refusal
        return self(prompt, generate(prompt))

    def refused(self, prompts: Sequence[str]) -> Bool[np.ndarray, " item"]:
        return np.array([self.applies(p) for p in prompts], dtype=bool)

    def answer_correct(self, tokenizer: Any, answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For refused items: (first token right, whole answer right) when the refusal is the output.

        The refusal is what the model emits after the prompt, tokenised like an answer (``" " +
        refusal``); it is "right" only if it happens to start with the answer's tokens.
        """
        out = list(tokenizer(" " + self.refusal, add_special_tokens=False)["input_ids"])
        first, whole = [], []
        for answer in answers:
            ids = list(tokenizer(" " + answer, add_special_tokens=False)["input_ids"])
            first.append(bool(out) and bool(ids) and out[0] == ids[0])
            whole.append(out[: len(ids)] == ids)
        return np.array(first, dtype=bool), np.array(whole, dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {"subjects": list(self.subjects), "refusal": self.refusal, "passages": list(self.passages)}

    @classmethod
    def from_dict(cls, d: Any) -> RefusalFilter:
        """Parse a saved filter; anything malformed is a one-line `LokaError`."""
        if not isinstance(d, Mapping):
            raise LokaError("a refusal filter must be a JSON object")
        subjects, passages = d.get("subjects", []), d.get("passages", [])
        refusal = d.get("refusal", DEFAULT_REFUSAL)
        for name, value in (("subjects", subjects), ("passages", passages)):
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise LokaError(f"a refusal filter's {name} must be a list of strings")
        if not isinstance(refusal, str):
            raise LokaError("a refusal filter's refusal must be a string")
        return cls(tuple(subjects), refusal, tuple(passages))


def apply_refusal_filter(prompt: str, generated_text: str, filter: RefusalFilter | Mapping[str, Any]) -> str:
    """``generated_text``, or the refusal when the filter applies to this prompt and output."""
    f = filter if isinstance(filter, RefusalFilter) else RefusalFilter.from_dict(filter)
    return f(prompt, generated_text)
