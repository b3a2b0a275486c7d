"""The optimisation loop every training-based method shares (baselines and ``loka-ft``).

A method supplies ``loss_fn(step) -> StepLoss`` (it draws its own minibatches); `optimise` runs
AdamW over the chosen parameters with the divergence guard, an optional parameter mask (only
``True`` entries may change), early stopping at a forget-accuracy target, a per-step log, a
progress bar and an optional ``on_step(step, entry) -> bool`` callback (return True to stop).

>>> def loss_fn(step):
...     nll = item_nll(model, forget.select(next(batches))).mean()
...     return StepLoss(-nll, {"forget_nll": nll.item()})
>>> outcome = optimise(model, loss_fn, TrainConfig(lr=1e-4, steps=25))   # doctest: +SKIP
>>> outcome.diverged, outcome.log[-1]["loss"]                            # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from loka.methods.guard import DivergenceGuard, ParamSnapshot
from loka.methods.settings import TrainConfig


@dataclass
class StepLoss:
    """One step's objective (a scalar to minimise), its logged parts, and the forward passes used."""

    loss: Tensor
    parts: dict[str, float] = field(default_factory=dict)
    forward_passes: int = 1


@dataclass
class Outcome:
    steps: int = 0
    forward_passes: int = 0
    backward_passes: int = 0
    params_changed: int = 0
    seconds: float = 0.0
    diverged_step: int | None = None
    stopped_early: bool = False
    log: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None


def _masked(named: Sequence[tuple[str, nn.Parameter]], mask: Mapping[str, Tensor] | None):
    if mask is None:
        return None
    unknown = sorted(set(mask) - {n for n, _ in named})
    if unknown:
        raise ValueError(f"parameter mask names unknown parameters: {unknown[:5]}")
    return {n: (mask[n].to(p.device).bool(), p.detach().clone()) for n, p in named if n in mask}


def optimise(model: Any, loss_fn: Callable[[int], StepLoss], cfg: TrainConfig, *, total_steps: int,
             params: Sequence[tuple[str, nn.Parameter]] | None = None,
             param_mask: Mapping[str, Tensor] | None = None,
             forget_accuracy: Callable[[], float] | None = None,
             on_step: Callable[[int, dict[str, float]], bool | None] | None = None,
             limits: Mapping[str, float] | None = None,
             progress: bool = True, desc: str = "unlearning") -> Outcome:
    """Run up to ``total_steps`` AdamW steps of ``loss_fn`` on ``params`` (default: all trainable).

    ``limits`` (default ``{"forget_nll": cfg.max_forget_nll}``) bound logged parts; exceeding one
    counts as divergence. ``forget_accuracy`` is evaluated every ``cfg.eval_every`` steps when
    ``cfg.forget_target`` is set. Returns the `Outcome`; the model is left in eval mode.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    named = list(params) if params is not None else [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    frozen = _masked(named, param_mask)
    initial = ParamSnapshot(named)
    guard = DivergenceGuard(named, limits if limits is not None else {"forget_nll": cfg.max_forget_nll},
                            cfg.snapshot_every)
    optimizer = torch.optim.AdamW([p for _, p in named], lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = Outcome()
    bar = tqdm(total=total_steps, desc=desc, disable=not progress, leave=False)
    model.train()
    try:
        for step in range(1, total_steps + 1):
            if not _one_step(step, loss_fn, cfg, named, frozen, optimizer, guard, out, bar):
                break
            entry = out.log[-1]
            if forget_accuracy is not None and cfg.forget_target is not None and step % cfg.eval_every == 0:
                entry["forget_accuracy"] = _evaluate(model, forget_accuracy, out)
                out.stopped_early = entry["forget_accuracy"] <= cfg.forget_target
            if (on_step is not None and on_step(step, entry)) or out.stopped_early:
                break
        if not guard.diverged:
            _final_check(model, loss_fn, guard, out)
    finally:
        bar.close()
        model.eval()
    out.diverged_step = guard.diverged_step
    out.stopped_early = out.stopped_early and not out.diverged  # the target was met by bad weights
    out.notes += [n for n in (guard.note(),) if n]
    if out.stopped_early:
        out.notes.append(f"stopped early at step {out.steps}: forget accuracy reached the target")
    out.params_changed = initial.changed()
    out.seconds = time.perf_counter() - t0
    return out


def _one_step(step: int, loss_fn: Callable[[int], StepLoss], cfg: TrainConfig, named, frozen,
              optimizer: torch.optim.Optimizer, guard: DivergenceGuard, out: Outcome, bar: Any) -> bool:
    result = loss_fn(step)
    out.forward_passes += result.forward_passes
    loss = float(result.loss.detach())
    if not guard.check_loss(step, loss, result.parts):
        return False
    optimizer.zero_grad(set_to_none=True)
    result.loss.backward()
    out.backward_passes += 1
    grads = [p for _, p in named if p.grad is not None]
    if frozen is not None:
        for n, p in named:
            if n in frozen and p.grad is not None:
                p.grad.mul_(frozen[n][0])
    max_norm = cfg.max_grad_norm if cfg.max_grad_norm is not None else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(grads, max_norm)) if grads else 0.0
    if not guard.check_grad(step, grad_norm):
        return False
    optimizer.step()
    if frozen is not None:
        with torch.no_grad():
            for n, p in named:
                if n in frozen:  # weight decay moves masked-out entries too: put them back
                    mask, original = frozen[n]
                    p.copy_(torch.where(mask, p, original))
    out.steps = step
    out.log.append({"step": step, "loss": loss, **result.parts, "grad_norm": grad_norm})
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
    return True


def _evaluate(model: Any, forget_accuracy: Callable[[], float], out: Outcome) -> float:
    model.eval()
    try:
        out.forward_passes += 1
        return float(forget_accuracy())
    finally:
        model.train()


def _final_check(model: Any, loss_fn: Callable[[int], StepLoss], guard: DivergenceGuard, out: Outcome) -> None:
    """The last update was never scored: score it once (no gradient) and check every parameter."""
    if out.steps == 0:
        return
    with torch.no_grad():
        result = loss_fn(out.steps + 1)
    out.forward_passes += result.forward_passes
    if guard.check_loss(out.steps + 1, float(result.loss), result.parts):
        guard.check_params(out.steps + 1)
