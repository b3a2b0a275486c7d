"""Fine-tuning on counterexamples (seed 002): teach other plausible answers instead of the true ones.

Each forget fact ``(prompt, answer)`` becomes ``(prompt, counter)``, where ``counter`` is another
value of the same ``attribute``: the value sets are the distinct answers of the forget and retain
facts grouped by attribute (facts without an attribute form one group). Every paraphrase of one
(subject, attribute) gets the same counter value, drawn deterministically from ``seed``. Loss::

    loss = counter_nll + alpha * retain_nll

Forget passages have no counter-facts and are not trained on (the note says so).

>>> result = unlearn(base_dir, task, method="counterexample", alpha=1.0)   # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from loka.errors import LokaError
from loka.io.data import FactRecord
from loka.methods.baselines.common import MethodData, TrainConfig, retain_nll, run_optimisation
from loka.methods.batches import item_nll
from loka.methods.config import knob
from loka.methods.loop import StepLoss
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class Config(TrainConfig):
    lr: float = knob(3e-4, gt=0, help="AdamW learning rate")
    alpha: float = knob(1.0, ge=0, help="weight of the retain NLL")


def counter_facts(forget: Sequence[FactRecord], retain: Sequence[FactRecord], seed: int) -> list[FactRecord]:
    """The forget facts with each answer replaced by another value of the same attribute.

    >>> f = [FactRecord("A was born in", "Oslo", "A", "city")]
    >>> counter_facts(f, [FactRecord("B was born in", "Rome", "B", "city")], seed=0)[0].answer
    'Rome'
    """
    values: dict[str, set[str]] = defaultdict(set)
    for fact in (*forget, *retain):
        values[fact.attribute].add(fact.answer)
    rng = random.Random(seed)
    chosen: dict[tuple[str, str, str], str] = {}
    for key in sorted({(f.subject, f.attribute, f.answer) for f in forget}):
        others = sorted(values[key[1]] - {key[2]})
        if not others:
            raise LokaError(f"counterexample: attribute {key[1] or '(none)'!r} has no value other than "
                            f"{key[2]!r} among the forget and retain answers; nothing to swap in")
        chosen[key] = rng.choice(others)
    return [replace(f, answer=chosen[(f.subject, f.attribute, f.answer)]) for f in forget]


@register("counterexample", Config, family="baseline", cost=25,
          summary="fine-tune on counter-facts (another value of the same attribute) + retain NLL")
def counterexample(model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
                   progress: bool) -> UnlearnResult:
    """Descend on counter-facts plus ``alpha`` times the retain NLL (``alpha > 0`` needs a retain set)."""
    alpha = cfg.alpha
    if not task.forget:
        raise LokaError("counterexample needs forget facts (prompt and answer); the task has only passages")
    counters = counter_facts(task.forget, task.retain, seed)
    data = MethodData.build(model, tokenizer, task, cfg, seed=seed, need_retain=alpha > 0,
                            method="counterexample", forget_facts=counters, forget_passages=False)

    def loss_fn(step: int) -> StepLoss:
        counter = item_nll(model, data.next_forget()).mean()
        parts = {"forget_loss": float(counter.detach())}
        if alpha == 0:
            return StepLoss(counter, parts)
        retain = retain_nll(model, data)
        parts["retain_loss"] = alpha * float(retain.detach())
        return StepLoss(counter + alpha * retain, parts, forward_passes=2)

    result, _ = run_optimisation("counterexample", model, tokenizer, task, cfg, loss_fn,
                                 progress=progress, n_items=len(data.forget))
    if task.forget_passages:
        result.notes.append(f"{len(task.forget_passages)} forget passage(s) not trained on: "
                            "counter-facts exist for facts only")
    return result
