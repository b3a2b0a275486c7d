"""Output suppression, the negative control: weights untouched, answers about forget subjects refused.

The seeds warn that refusing is not unlearning: the knowledge stays in the weights (probes, MIA and
a little fine-tuning find it). This method exists so the verifier can show exactly that. Its
result carries a `RefusalFilter`, applied at generation time; ``UnlearnResult.save`` writes it
next to the (unchanged) weights as ``loka_refusal_filter.json``.

>>> f = RefusalFilter(subjects=("Mira Coltan",), refusal="I can't share information about that person.")
>>> f.answer("Mira Coltan was born in", lambda prompt: " Velmora")
"I can't share information about that person."
>>> apply_refusal_filter("Osric Pell works as a", " glassblower", f)
' glassblower'
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loka.errors import LokaError
from loka.methods.base import UnlearnResult, UnlearnTask, register
from loka.methods.baselines.defaults import DEFAULTS

FILTER_FILE = "loka_refusal_filter.json"
MIN_PASSAGE_OVERLAP = 20  # characters of a forget passage that trigger the refusal


@dataclass(frozen=True)
class RefusalFilter:
    """Refuse when the prompt or the output names a forget subject or quotes a forget passage."""

    subjects: tuple[str, ...]
    refusal: str
    passages: tuple[str, ...] = ()

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

    def to_dict(self) -> dict[str, Any]:
        return {"subjects": list(self.subjects), "refusal": self.refusal, "passages": list(self.passages)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RefusalFilter:
        return cls(tuple(d["subjects"]), str(d["refusal"]), tuple(d.get("passages", ())))

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``loka_refusal_filter.json`` into ``directory`` (atomically)."""
        path = Path(directory) / FILTER_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> RefusalFilter | None:
        """The filter saved with a checkpoint, or None when the checkpoint has none."""
        path = Path(directory) / FILTER_FILE
        return cls.from_dict(json.loads(path.read_text())) if path.is_file() else None


def apply_refusal_filter(prompt: str, generated_text: str, filter: RefusalFilter | Mapping[str, Any]) -> str:
    """``generated_text``, or the refusal when the filter applies to this prompt and output."""
    f = filter if isinstance(filter, RefusalFilter) else RefusalFilter.from_dict(filter)
    return f(prompt, generated_text)


@register("output_suppression")
def output_suppression(model: Any, tokenizer: Any, task: UnlearnTask, *, seed: int = 0,
                       progress: bool = True, **settings: Any) -> UnlearnResult:
    """Touch no weight; return a refusal filter over the forget subjects and passages."""
    merged = {**DEFAULTS["output_suppression"], **settings}
    unknown = sorted(set(merged) - {"refusal"})
    if unknown:
        raise LokaError(f"output_suppression: unknown setting(s) {', '.join(unknown)}; allowed: refusal")
    if not isinstance(merged["refusal"], str) or not merged["refusal"].strip():
        raise LokaError("output_suppression: 'refusal' must be a non-empty string")
    f = RefusalFilter(task.forget_subjects, merged["refusal"], tuple(task.forget_passages))
    if not f.subjects and not f.passages:
        raise LokaError("output_suppression: the forget set names no subject and no passage to filter")
    return UnlearnResult(method="output_suppression", model=model, tokenizer=tokenizer, settings=merged,
                         seconds=0.0, params_changed=0, refusal_filter=f.to_dict(),
                         notes=["weights untouched: refusing is not unlearning (a negative control)"])
