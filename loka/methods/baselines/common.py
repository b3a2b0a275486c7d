"""What the optimisation baselines share: their settings, data, minibatch streams and result.

Training data: the forget set is the task's forget facts (loss on the answer tokens; the prompt is
context) followed by its forget passages (loss on every token); the retain set is the retain facts
and retain passages, built the same way. Every step draws one forget minibatch and, when the
method uses one, one retain minibatch of the same size; both streams are shuffled by ``seed``.

>>> data = MethodData.build(model, tokenizer, task, cfg, seed=0, need_retain=True)   # doctest: +SKIP
>>> retain_nll(model, data)                                                          # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from loka.errors import LokaError
from loka.evaluate import FirstTokenEval
from loka.io.data import FactRecord
from loka.methods.batches import TokenSet, item_nll, minibatches
from loka.methods.config import MethodConfig, knob
from loka.methods.loop import LoopSettings, Outcome, StepLoss, optimise
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class TrainConfig(MethodConfig):
    """The optimisation settings every baseline shares (a method redefines what it tunes).

    ``forget_target`` stops the run once first-token accuracy on the forget facts is at or below
    it, checked every ``eval_every`` steps: going further only costs retain accuracy (0.1 is the
    seed's "excellent" threshold). ``retain_budget`` stops it, at the same checks, once
    first-token accuracy on the retain facts falls below that fraction of its value before the
    run, keeping the weights from before that step: one learning rate cannot suit a 1M-parameter
    world and a 135M-parameter pretrained model alike (on SmolLM2 the former defaults took
    retain accuracy to 0.00-0.19 with no warning), but a budget holds on both.
    """

    lr: float = knob(1e-4, gt=0, help="AdamW learning rate")
    epochs: int = knob(10, ge=1, help="passes over the forget set (unless steps is set)")
    steps: int | None = knob(None, ge=1, help="optimisation steps; replaces epochs")
    batch_size: int = knob(32, ge=1, help="forget (and retain) items per step")
    weight_decay: float = knob(0.01, ge=0, help="AdamW weight decay")
    max_grad_norm: float | None = knob(None, gt=0, help="gradient clipping norm (none: no clipping)")
    forget_target: float | None = knob(0.1, ge=0, le=1, help="stop at this forget first-token accuracy")
    eval_every: int = knob(1, ge=1, help="steps between forget-accuracy checks")
    max_forget_nll: float = knob(50.0, gt=0, help="forget NLL (nats/token) above this counts as collapse")
    snapshot_every: int = knob(1, ge=1, help="steps between the divergence guard's snapshots")
    retain_budget: float | None = knob(0.9, gt=0, le=1, help="stop before retain first-token accuracy "
                                       "falls below this fraction of its start (null: never)")

    def total_steps(self, n_forget: int) -> int:
        """``steps``, or ``epochs`` passes over ``n_forget`` items."""
        return self.steps if self.steps is not None else self.epochs * math.ceil(n_forget / self.batch_size)

    def loop(self, retain_floor: float | None = None) -> LoopSettings:
        return LoopSettings(lr=self.lr, weight_decay=self.weight_decay, max_grad_norm=self.max_grad_norm,
                            target=self.forget_target, eval_every=self.eval_every,
                            snapshot_every=self.snapshot_every, retain_floor=retain_floor)


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
    """Mean NLL of the next retain minibatch (each item's mean over its loss tokens)."""
    return item_nll(model, data.next_retain()).mean()


def run_optimisation(method: str, model: Any, tokenizer: Any, task: UnlearnTask, cfg: TrainConfig,
                     loss_fn: Callable[[int], StepLoss], *, progress: bool, n_items: int,
                     early_stop: bool = True) -> tuple[UnlearnResult, Outcome]:
    """Run `optimise` over all parameters and wrap its `Outcome` as an `UnlearnResult`.

    Early stopping reads first-token accuracy on the task's (true) forget facts; the retain
    budget (`retain_floor`) the task's retain facts.
    """
    facts = task.forget
    check = FirstTokenEval(tokenizer, facts) if early_stop and facts else None  # tokenised once
    accuracy = (lambda: check(model)) if check is not None else None
    floor, keep = retain_floor(model, tokenizer, task, cfg)
    outcome = optimise(model, loss_fn, cfg.loop(floor), total_steps=cfg.total_steps(n_items),
                       forget_accuracy=accuracy, retain_accuracy=keep,
                       limits={"forget_nll": cfg.max_forget_nll}, progress=progress, desc=method)
    return result_from(method, model, tokenizer, cfg.to_dict(), outcome), outcome


def retain_floor(model: Any, tokenizer: Any, task: UnlearnTask, cfg: TrainConfig
                 ) -> tuple[float | None, Callable[[], float] | None]:
    """``(floor, measure)``: the retain budget's floor and the retain-accuracy check, or
    ``(None, None)`` without a budget or retain facts (pure ascent on a forget text, seed 001)."""
    if cfg.retain_budget is None or not task.retain:
        return None, None
    check = FirstTokenEval(tokenizer, task.retain)
    with torch.inference_mode():
        start = check(model)
    return cfg.retain_budget * start, lambda: check(model)


def result_from(method: str, model: Any, tokenizer: Any, settings: dict[str, Any], outcome: Outcome) -> UnlearnResult:
    return UnlearnResult(
        method=method, model=model, tokenizer=tokenizer, settings=settings, seconds=outcome.seconds,
        params_changed=outcome.params_changed, steps=outcome.steps,
        forward_passes=outcome.forward_passes, backward_passes=outcome.backward_passes,
        diverged=outcome.diverged, diverged_step=outcome.diverged_step, log=outcome.log,
        notes=list(outcome.notes),
    )
