"""The optimisation loop of `loka-ft` and `loka-mask`: unlikelihood on forget, NLL on retain.

Each step runs the whole forget set (its first-token accuracy comes free from those logits, so
the stopping check costs nothing) and one retain minibatch, then minimises::

    loss = forget_unlikelihood + retain_weight * retain_nll (+ penalty())

The accuracy is measured *before* the step's update, so when it reaches ``forget_target`` the
loop stops with exactly the weights it measured. The project's `DivergenceGuard` watches every
step (non-finite loss, loss part or gradient norm, a retain NLL above ``max_retain_nll``): it
restores the last good weights and the loop stops, reporting where and why.

Example:
    >>> report = optimise(model, list(mask.params.items()), forget, retain,
    ...                   LoopSpec(steps=100, lr=1e-3), after_backward=mask.apply_to_grads)
    >>> report.steps, report.stopped
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from attribution.data import FactBatch
from attribution.metrics import read_positions
from loka.evaluate import logits_at, prompt_ends
from loka.methods.guard import DivergenceGuard
from loka.methods.localized.common import (
    answers_nll,
    check_number,
    first_accuracy,
    first_unlikelihood,
)


@dataclass(frozen=True)
class LoopSpec:
    """Loop settings; ``forget_target`` is a first-token accuracy on the forget facts."""

    steps: int = 200
    lr: float = 1e-3
    retain_weight: float = 1.0
    forget_target: float | None = 0.05  # None: run every step
    retain_batch: int = 256
    max_retain_nll: float = 20.0

    def __post_init__(self) -> None:
        check_number("steps", self.steps, 1, integer=True)
        check_number("lr", self.lr, 1e-12)
        check_number("retain_weight", self.retain_weight, 0)
        if self.forget_target is not None:
            check_number("forget_target", self.forget_target, 0, 1)
        check_number("retain_batch", self.retain_batch, 1, integer=True)
        check_number("max_retain_nll", self.max_retain_nll, 1e-6)


@dataclass
class LoopReport:
    steps: int = 0
    forward_passes: int = 0
    backward_passes: int = 0
    stopped: str = "steps"  # "target" | "steps" | "diverged"
    diverged_step: int | None = None
    divergence: str | None = None
    final_forget_accuracy: float = math.nan
    log: list[dict[str, float]] = field(default_factory=list)


def _first_of_rows(selected: Tensor, batch: FactBatch) -> float:
    """First-token accuracy from ``logits_at(.., read_positions(batch))``: each row's first
    selected position is its prompt end."""
    counts = read_positions(batch).sum(-1).to(selected.device)
    return first_accuracy(selected[torch.cumsum(counts, 0) - counts], batch)


def _retain_chunks(retain: FactBatch, size: int):
    while True:
        yield from retain.chunks(size)


def optimise(model: Any, named: list[tuple[str, Tensor]],
             forget: FactBatch, retain: FactBatch, spec: LoopSpec, *,
             penalty: Callable[[], Tensor] | None = None,
             after_backward: Callable[[], None] | None = None, progress: bool = False,
             log_every: int = 1) -> LoopReport:
    """Adam (no weight decay: a zero gradient must leave a weight bit-identical) on ``named``.

    ``after_backward`` is where a gradient mask is applied.
    """
    params = [p for _, p in named]
    f_where = prompt_ends(forget)  # the forget terms read the prompt ends only: logits_at runs no further
    opt = torch.optim.Adam(params, lr=spec.lr, weight_decay=0.0)
    guard = DivergenceGuard(named, limits={"retain_nll": spec.max_retain_nll})
    chunks = _retain_chunks(retain, spec.retain_batch)
    report = LoopReport()
    bar = tqdm(total=spec.steps, desc="localized optimisation", disable=not progress)
    with torch.enable_grad(), bar:
        for step in range(spec.steps + 1):
            f_logits = logits_at(model, forget, f_where)  # [forget, vocab]: the prompt ends
            report.forward_passes += 1
            acc = first_accuracy(f_logits.detach(), forget)
            report.final_forget_accuracy = acc
            reached = spec.forget_target is not None and acc <= spec.forget_target
            if reached or step == spec.steps:
                report.stopped = "target" if reached else "steps"
                report.log.append({"step": step, "forget_accuracy": acc})
                break
            chunk = next(chunks)
            r_logits = logits_at(model, chunk, read_positions(chunk))  # [answer tokens, vocab]
            report.forward_passes += 1
            f_loss, r_loss = first_unlikelihood(f_logits, forget), answers_nll(r_logits, chunk)
            loss = f_loss + spec.retain_weight * r_loss
            if penalty is not None:
                loss = loss + penalty()
            parts = {"forget_unlikelihood": float(f_loss.detach()), "retain_nll": float(r_loss.detach())}
            if not guard.check_loss(step, float(loss.detach()), parts):
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            report.backward_passes += 1
            if after_backward is not None:
                after_backward()
            norm = torch.linalg.vector_norm(torch.stack([
                torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None]))
            if not guard.check_grad(step, float(norm)):
                break
            opt.step()
            report.steps = step + 1
            if step % log_every == 0:
                report.log.append({"step": step, "forget_accuracy": acc, **parts,
                                   "retain_batch_accuracy": _first_of_rows(r_logits.detach(), chunk)})
            bar.update()
            bar.set_postfix(forget_acc=f"{acc:.3f}", loss=f"{float(loss.detach()):.3f}")
    guard.check_params(report.steps)
    if guard.diverged:
        report.stopped, report.diverged_step, report.divergence = "diverged", guard.diverged_step, guard.note()
    return report
