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
from loka.memory import is_large
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
    """Adam (no weight decay: a masked-out weight stays bit-identical) on ``named``.

    A large model (`loka.memory.is_large`) runs each step in chunks of `LARGE_CHUNK` rows, each
    chunk's backward pass before the next chunk's forward pass, the chunks' losses weighted to
    the same means: the same gradient up to the order of float sums, for the graph of one chunk
    instead of the whole step. On SmolLM2-135M that is what keeps ``loka-ft``'s resident memory
    near its live memory: one graph over ~200 rows left glibc's heap 0.8-1.1 GB above the live
    ~0.3 GB (each layer's saved input pins a hole the next layer's intermediates cannot reuse).
    """
    settings = LoopSettings(lr=cfg.lr, target=cfg.forget_target)
    loss_fn = (_chunked_loss if is_large(model) else _one_graph_loss)(model, forget, retain, cfg, penalty)
    return optimise(model, loss_fn, settings, total_steps=cfg.steps, params=named,
                    param_mask=param_mask, limits={"retain_nll": cfg.max_retain_nll},
                    progress=progress, desc="localized optimisation")


def _one_graph_loss(model: Any, forget: FactBatch, retain: FactBatch, cfg: LoopConfig,
                    penalty: Callable[[], Tensor] | None) -> Callable[[int], StepLoss]:
    """The step as one graph (the loop runs its backward pass): the worlds' models."""
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

    return loss_fn


#: Rows per forward-and-backward chunk of a large model's step.
LARGE_CHUNK = 16


def _chunked_loss(model: Any, forget: FactBatch, retain: FactBatch, cfg: LoopConfig,
                  penalty: Callable[[], Tensor] | None) -> Callable[[int], StepLoss]:
    """`_one_graph_loss`'s objective, chunk by chunk, each chunk's backward pass at once (the
    loop's ``StepLoss.accumulated``); without gradients (the loop's final check) no backward."""
    chunks = _retain_chunks(retain, cfg.retain_batch)

    def backward(loss: Tensor, weight: float = 1.0) -> float:
        """``weight * loss``'s gradient into the parameters' ``.grad``; ``loss``'s value."""
        if loss.requires_grad:
            (loss * weight).backward()
        return float(loss.detach())

    def loss_fn(step: int) -> StepLoss:
        f_loss, hits = 0.0, 0.0
        for part in forget.chunks(LARGE_CHUNK):  # mean over rows: each chunk weighted by its rows
            logits = logits_at(model, part, prompt_ends(part))
            hits += first_accuracy(logits.detach(), part) * len(part)
            f_loss += backward(first_unlikelihood(logits, part) * (len(part) / len(forget)))
        acc = hits / len(forget)
        if cfg.forget_target is not None and acc <= cfg.forget_target:
            return StepLoss(torch.tensor(f_loss), {"forget_unlikelihood": f_loss}, 1, acc, accumulated=True)
        chunk = next(chunks)
        n_answer = int(chunk.answer_mask[:, 1:].sum())  # the retain NLL is a mean over answer tokens
        r_loss, r_hits = 0.0, 0.0
        for part in chunk.chunks(LARGE_CHUNK):
            logits = logits_at(model, part, read_positions(part))
            r_hits += _first_of_rows(logits.detach(), part) * len(part)
            share = int(part.answer_mask[:, 1:].sum()) / n_answer
            r_loss += backward(answer_nll_at(logits, part) * share, cfg.retain_weight)
        extra = backward(penalty()) if penalty is not None else 0.0
        parts = {"forget_unlikelihood": f_loss, "retain_nll": r_loss, "retain_batch_accuracy": r_hits / len(chunk)}
        return StepLoss(torch.tensor(f_loss + cfg.retain_weight * r_loss + extra), parts, 2, acc,
                        accumulated=True)

    return loss_fn
