"""The localized methods' objective on the shared loop: unlikelihood on forget, NLL on retain.

Each step runs the whole forget set at its prompt ends (its first-token accuracy comes free from
those logits, so the stopping check costs nothing) and one retain minibatch, then minimises::

    loss = forget_unlikelihood + retain_weight * retain_nll (+ penalty())

The accuracy is measured *before* the step's update, so when it reaches ``forget_target`` the
loop (`loka.methods.loop.optimise`) stops with exactly the weights it measured. The divergence
guard watches every step (non-finite loss, loss part or gradient norm, a retain NLL above
``max_retain_nll``): it restores the last good weights and the loop stops, saying where and why.

Example:
    >>> outcome = optimise_localized(model, list(mask.params.items()), forget, retain, cfg,  # doctest: +SKIP
    ...                              param_mask=mask.masks)
    >>> outcome.steps, outcome.stopped  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from attribution.data import FactBatch
from attribution.metrics import read_positions
from loka.evaluate import logits_at, prompt_ends
from loka.methods.config import knob
from loka.methods.localized.common import (
    LocalizedConfig,
    answer_nll_at,
    first_accuracy,
    first_unlikelihood,
)
from loka.methods.loop import LoopSettings, Outcome, StepLoss, optimise


@dataclass(frozen=True)
class LoopConfig(LocalizedConfig):
    """The optimisation settings of the localized methods (``loka-ft``, ``loka-mask``)."""

    ablation: Literal["zero", "mean", "resample"] = knob("zero", help="the intervention attribution measures")
    rank_sample: int = knob(1024, ge=1, help="retain facts scored by the ranking (a shuffled sample)")
    steps: int = knob(200, ge=1, help="most optimisation steps")
    lr: float = knob(1e-3, gt=0, help="Adam learning rate")
    retain_weight: float = knob(1.0, ge=0, help="weight of the retain NLL")
    forget_target: float | None = knob(0.05, ge=0, le=1, help="stop at this forget first-token accuracy (null: run every step)")
    retain_batch: int = knob(256, ge=1, help="retain facts per step")
    max_retain_nll: float = knob(20.0, gt=0, help="retain NLL above this counts as divergence")


def _first_of_rows(selected: Tensor, batch: FactBatch) -> float:
    """First-token accuracy from ``logits_at(.., read_positions(batch))``: each row's first
    selected position is its prompt end."""
    counts = read_positions(batch).sum(-1).to(selected.device)
    return first_accuracy(selected[torch.cumsum(counts, 0) - counts], batch)


def _retain_chunks(retain: FactBatch, size: int) -> Iterator[FactBatch]:
    while True:
        yield from retain.chunks(size)


def optimise_localized(model: Any, named: Sequence[tuple[str, nn.Parameter]], forget: FactBatch,
                       retain: FactBatch, cfg: LoopConfig, *,
                       param_mask: Mapping[str, Tensor] | None = None,
                       penalty: Callable[[], Tensor] | None = None, progress: bool = False) -> Outcome:
    """Adam (no weight decay: a masked-out weight stays bit-identical) on ``named``."""
    f_where = prompt_ends(forget)  # the forget terms read the prompt ends only
    chunks = _retain_chunks(retain, cfg.retain_batch)

    def loss_fn(step: int) -> StepLoss:
        f_logits = logits_at(model, forget, f_where)  # [forget, vocab]: the prompt ends
        acc = first_accuracy(f_logits.detach(), forget)
        f_loss = first_unlikelihood(f_logits, forget)
        if cfg.forget_target is not None and acc <= cfg.forget_target:
            return StepLoss(f_loss, {"forget_unlikelihood": float(f_loss.detach())}, 1, acc)
        chunk = next(chunks)
        r_logits = logits_at(model, chunk, read_positions(chunk))  # [answer tokens, vocab]
        r_loss = answer_nll_at(r_logits, chunk)
        loss = f_loss + cfg.retain_weight * r_loss
        if penalty is not None:
            loss = loss + penalty()
        parts = {"forget_unlikelihood": float(f_loss.detach()), "retain_nll": float(r_loss.detach()),
                 "retain_batch_accuracy": _first_of_rows(r_logits.detach(), chunk)}
        return StepLoss(loss, parts, 2, acc)

    settings = LoopSettings(lr=cfg.lr, target=cfg.forget_target)
    return optimise(model, loss_fn, settings, total_steps=cfg.steps, params=named,
                    param_mask=param_mask, limits={"retain_nll": cfg.max_retain_nll},
                    progress=progress, desc="localized optimisation")
