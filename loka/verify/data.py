"""What the verifier measures a model on: fact sets by split and template family, and passages.

Splits follow the world: ``forget`` (to erase), ``retain_train`` (what methods may look at),
``retain_eval`` (retain facts only the verifier sees), ``holdout`` (never trained: the
non-members). Template families: ``train`` (the trained paraphrases), ``qa`` (a held-out
question format) and ``novel`` (a paraphrase nobody trained). A set that is absent (user data
without a holdout set, say) makes the metrics that need it ``Missing``, never invented.

Example:
    >>> data = VerifyData.from_world(load_world("tiny"))            # doctest: +SKIP
    >>> len(data.fact_set("forget")), data.passages["forget"][0][:20]  # doctest: +SKIP
    (160, 'The quiet valley of ')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loka.io.data import FactRecord

SPLITS: tuple[str, ...] = ("forget", "retain_train", "retain_eval", "holdout")
KINDS: tuple[str, ...] = ("train", "qa", "novel")
PASSAGE_SPLITS: tuple[str, ...] = ("forget", "retain", "holdout")


def _record(fact: Any, kind: str) -> FactRecord:
    """A world fact as a record of template family ``kind`` (as user data's records carry theirs)."""
    return FactRecord(fact.prompt, fact.answer, getattr(fact, "subject", ""),
                      getattr(fact, "attribute", ""), "" if kind == "train" else kind)


@dataclass(frozen=True, eq=False)
class VerifyData:
    """Fact sets keyed ``(split, kind)`` and passages keyed by split, plus the world's tokenizer.

    ``tokenizer`` is the one the data was made for (a model with another is refused);
    ``retrain_seconds`` is what retraining from scratch cost (the cost metric's yardstick);
    ``info`` is what ``loka world info --json`` prints, when the data is a world.
    """

    facts: Mapping[tuple[str, str], tuple[FactRecord, ...]]
    passages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tokenizer: Any = None
    retrain_seconds: float | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    name: str = "data"

    @classmethod
    def from_world(cls, artifacts: Any) -> VerifyData:
        """Every fact set and passage split of a built world (`loka.world.build.WorldArtifacts`)."""
        world = artifacts.world
        facts = {(s, k): tuple(_record(f, k) for f in world.facts(s, k)) for s in SPLITS for k in KINDS}
        passages = {s: tuple(p.text for p in world.passages_in(s)) for s in PASSAGE_SPLITS}
        info = artifacts.info()
        return cls(facts=facts, passages=passages, tokenizer=artifacts.tokenizer(),
                   retrain_seconds=info.get("retrain_train_seconds"), info=info,
                   name=f"world:{info['preset']}")

    def fact_set(self, split: str, kind: str = "train") -> tuple[FactRecord, ...]:
        """The facts of ``split`` in template family ``kind``; empty when the data has none."""
        return tuple(self.facts.get((split, kind), ()))

    def has(self, split: str, kind: str = "train") -> bool:
        return bool(self.fact_set(split, kind))

    def subjects(self, *splits: str) -> list[str]:
        """Distinct subjects of the training-template facts of ``splits``, in first-seen order."""
        seen: dict[str, None] = {}
        for split in splits:
            for f in self.fact_set(split):
                if f.subject:
                    seen.setdefault(f.subject, None)
        return list(seen)

    def attribute_values(self) -> dict[str, list[str]]:
        """Every answer seen per attribute, across all splits (candidates for wrong answers)."""
        values: dict[str, dict[str, None]] = {}
        for facts in self.facts.values():
            for f in facts:
                if f.attribute:
                    values.setdefault(f.attribute, {}).setdefault(f.answer, None)
        return {a: sorted(v) for a, v in values.items()}
