"""What the optimisation baselines share: their data, minibatch streams and the result they return.

Training data: the forget set is the task's forget facts (loss on the answer tokens; the prompt is
context) followed by its forget passages (loss on every token); the retain set is the retain facts
and retain passages, built the same way. Every step draws one forget minibatch and, when the
method uses one, one retain minibatch of the same size; both streams are shuffled by ``seed``.

>>> data = MethodData.build(model, tokenizer, task, cfg, seed=0, need_retain=True)   # doctest: +SKIP
>>> data.forget_nll(model)                                                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from loka.data import FactRecord
from loka.errors import LokaError
from loka.evaluate import FirstTokenEval
from loka.methods.base import UnlearnResult, UnlearnTask
from loka.methods.batches import TokenSet, item_nll, minibatches
from loka.methods.settings import TrainConfig
from loka.methods.training import Outcome, StepLoss, optimise


def max_len_of(model: Any) -> int | None:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


@dataclass
class MethodData:
    """The tokenised forget and retain sets and their endless minibatch streams."""

    forget: TokenSet
    retain: TokenSet | None
    forget_batches: Any
    retain_batches: Any

    @classmethod
    def build(cls, model: Any, tokenizer: Any, task: UnlearnTask, cfg: TrainConfig, *, seed: int,
              need_retain: bool, method: str, forget_facts: Sequence[FactRecord] | None = None,
              forget_passages: bool = True) -> MethodData:
        """``forget_facts`` replaces the task's forget facts (counter-facts); ``need_retain``
        makes an empty retain set an error."""
        if need_retain and not task.retain and not task.retain_passages:
            raise LokaError(f"{method} needs a retain set (retain facts or passages) and the task "
                            "has none; give one, or use pure ascent (gradient_ascent alpha=1)")
        max_len = max_len_of(model)
        facts = task.forget if forget_facts is None else forget_facts
        forget = TokenSet.build(tokenizer, facts, task.forget_passages if forget_passages else (), max_len)
        if forget is None:
            raise LokaError(f"{method}: nothing to train on in the forget set")
        retain = TokenSet.build(tokenizer, task.retain, task.retain_passages, max_len) if need_retain else None
        gen = torch.Generator().manual_seed(seed)
        streams = (minibatches(len(forget), cfg.batch_size, gen),
                   minibatches(len(retain), cfg.batch_size, gen) if retain is not None else None)
        return cls(forget, retain, *streams)

    def next_forget(self) -> TokenSet:
        return self.draw_forget()[1]

    def draw_forget(self) -> tuple[Tensor, TokenSet]:
        """The next forget minibatch and the indices of its items in ``self.forget``."""
        index = next(self.forget_batches)
        return index, self.forget.select(index)

    def next_retain(self) -> TokenSet:
        if self.retain is None:
            raise RuntimeError("this method was built without a retain set")
        return self.retain.select(next(self.retain_batches))


def retain_nll(model: Any, data: MethodData) -> Tensor:
    return item_nll(model, data.next_retain()).mean()


def run_optimisation(method: str, model: Any, tokenizer: Any, task: UnlearnTask, cfg: TrainConfig,
                     settings: dict[str, Any], loss_fn: Callable[[int], StepLoss], *, progress: bool,
                     n_items: int, early_stop: bool = True) -> tuple[UnlearnResult, Outcome]:
    """Run `optimise` over all parameters and wrap its `Outcome` as an `UnlearnResult`.

    Early stopping reads first-token accuracy on the task's (true) forget facts.
    """
    facts = task.forget
    check = FirstTokenEval(tokenizer, facts) if early_stop and facts else None  # tokenised once
    accuracy = (lambda: check(model)) if check is not None else None
    outcome = optimise(model, loss_fn, cfg, total_steps=cfg.total_steps(n_items), forget_accuracy=accuracy,
                       progress=progress, desc=method)
    return result_from(method, model, tokenizer, settings, outcome), outcome


def result_from(method: str, model: Any, tokenizer: Any, settings: dict[str, Any], outcome: Outcome) -> UnlearnResult:
    return UnlearnResult(
        method=method, model=model, tokenizer=tokenizer, settings=settings, seconds=outcome.seconds,
        params_changed=outcome.params_changed, steps=outcome.steps,
        forward_passes=outcome.forward_passes, backward_passes=outcome.backward_passes,
        diverged=outcome.diverged, diverged_step=outcome.diverged_step, log=outcome.log,
        notes=list(outcome.notes),
    )
