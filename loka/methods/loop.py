"""The one optimisation loop every optimising method uses, with the divergence guard.

A method supplies ``loss_fn(step) -> StepLoss`` (it draws its own minibatches); `optimise` runs
AdamW over the chosen parameters (weight decay 0 is exactly Adam) with the divergence guard, an
optional parameter mask (only ``True`` entries may change), two ways to stop at a forget target,
a per-step log, a progress bar and an optional ``on_step(step, entry) -> bool`` callback.

Stopping at the target, two ways:
- ``StepLoss.forget_accuracy`` measured on the step's own forward pass (before its update): when it
  is at or below ``target`` the loop stops *without* that update, so it keeps exactly the weights
  it measured (the localized methods; the check costs nothing).
- ``forget_accuracy()``, a separate evaluation after every ``eval_every`` updates (the baselines).

A ``loss_fn`` may run its own backward passes, chunk by chunk (``StepLoss.accumulated``): the
loop clears the gradients before each call, and then takes the step from what it accumulated.
On a large model that frees each chunk's graph before the next forward pass, so the heap never
holds the whole step's (see `loka.methods.localized.objective`).

>>> def loss_fn(step):
...     nll = item_nll(model, forget.select(next(batches))).mean()
...     return StepLoss(-nll, {"forget_nll": nll.item()})
>>> outcome = optimise(model, loss_fn, LoopSettings(lr=1e-4), total_steps=25)   # doctest: +SKIP
>>> outcome.diverged, outcome.log[-1]["loss"]                                    # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from loka.memory import adamw, is_large, large_model_recomputed
from loka.methods.guard import DivergenceGuard, ParamSnapshot


@dataclass(frozen=True)
class LoopSettings:
    """How the loop optimises: learning rate, decay, clipping, when to check the target."""

    lr: float
    weight_decay: float = 0.0
    max_grad_norm: float | None = None
    target: float | None = None  # stop once forget first-token accuracy is at or below it
    eval_every: int = 1
    retain_floor: float | None = None  # stop, restoring the weights before the step, below it
    forget_ceiling: float | None = None  # stop, restoring the weights before the step, above it
    snapshot_every: int = 1


@dataclass
class StepLoss:
    """One step's objective (a scalar to minimise), its logged parts and the passes used;
    ``forget_accuracy`` when the step's own pass measured it (before the update)."""

    loss: Tensor
    parts: dict[str, float] = field(default_factory=dict)
    forward_passes: int = 1
    forget_accuracy: float | None = None
    accumulated: bool = False  # the loss_fn already ran the backward passes (``loss`` is detached)


@dataclass
class Outcome:
    steps: int = 0
    forward_passes: int = 0
    backward_passes: int = 0
    params_changed: int = 0
    seconds: float = 0.0
    diverged_step: int | None = None
    stopped: str = "steps"  # "target" | "steps" | "callback" | "diverged" | "retain budget" | "forget ceiling"
    final_forget_accuracy: float | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None


def _masked(named: Sequence[tuple[str, nn.Parameter]], mask: Mapping[str, Tensor] | None,
            decay: bool) -> dict[str, tuple[Tensor, Tensor | None]] | None:
    """Each masked parameter's mask, and (under weight decay only) its values to restore: with
    no decay a zero gradient leaves Adam's moments at zero and the entry bit-identical."""
    if mask is None:
        return None
    unknown = sorted(set(mask) - {n for n, _ in named})
    if unknown:
        raise ValueError(f"parameter mask names unknown parameters: {unknown[:5]}")
    return {n: (mask[n].to(p.device).bool(), p.detach().clone() if decay else None)
            for n, p in named if n in mask}


def optimise(model: Any, loss_fn: Callable[[int], StepLoss], cfg: LoopSettings, *, total_steps: int,
             params: Sequence[tuple[str, nn.Parameter]] | None = None,
             param_mask: Mapping[str, Tensor] | None = None,
             forget_accuracy: Callable[[], float] | None = None,
             retain_accuracy: Callable[[], float] | None = None,
             on_step: Callable[[int, dict[str, float]], bool | None] | None = None,
             limits: Mapping[str, float] | None = None,
             progress: bool = True, desc: str = "unlearning") -> Outcome:
    """Run up to ``total_steps`` AdamW steps of ``loss_fn`` on ``params`` (default: all trainable).

    ``limits`` bound logged parts (e.g. ``{"forget_nll": 50}``); exceeding one counts as
    divergence. ``retain_accuracy`` with ``cfg.retain_floor``: checked every ``eval_every``
    steps; below the floor the weights from before that step are restored and the run stops
    (the method's retain budget: on a pretrained model a learning rate that suits one model
    wrecks another, and the budget stops it at the last step that kept what it must keep).
    ``cfg.forget_ceiling`` (with ``retain_floor``, checked after it): the same when a step takes
    forget accuracy above it (a phase that must not undo the forgetting).
    Returns the `Outcome`; the model is left in eval mode.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    named = list(params) if params is not None else [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    frozen = _masked(named, param_mask, bool(cfg.weight_decay))
    # A large model's starting weights (read once, at the end) and the guard's last good weights
    # (read only to restore them) wait in anonymous files, not in memory: 2 x 513 MB on SmolLM2.
    large = is_large(sum(p.numel() for _, p in named))
    initial = ParamSnapshot(named, on_disk=large)
    guard = DivergenceGuard(named, limits or {}, cfg.snapshot_every, on_disk=large)
    optimizer = adamw([p for _, p in named], lr=cfg.lr, weight_decay=cfg.weight_decay, large=large)
    out = Outcome()
    bar = tqdm(total=total_steps, desc=desc, disable=not progress, leave=False)
    model.train()
    try:
        with torch.enable_grad(), large_model_recomputed(model):  # a large model: layers' inputs only
            scored = _run(model, loss_fn, cfg, total_steps, named, frozen, optimizer, guard, out,
                          bar, forget_accuracy, on_step, retain_accuracy)
        if not guard.diverged and out.stopped not in UNDONE:
            if scored:  # stopped before an update: the weights are the ones just measured
                guard.check_params(out.steps)
            else:
                _final_check(model, loss_fn, guard, out)
    finally:
        bar.close()
        model.eval()
    out.diverged_step = guard.diverged_step
    if out.diverged:
        out.stopped = "diverged"  # a target met by bad weights is no target met
    out.notes += [n for n in (guard.note(),) if n]
    if out.stopped == "target":
        out.notes.append(f"stopped at step {out.steps}: forget accuracy reached the target")
    out.params_changed = initial.changed()
    initial.close()
    guard.snapshot.close()
    out.seconds = time.perf_counter() - t0
    return out


def _run(model, loss_fn, cfg, total_steps, named, frozen, optimizer, guard, out, bar,
         forget_accuracy, on_step, retain_accuracy=None) -> bool:
    """The steps; True when it stopped on a step's own measurement, before that step's update."""
    for step in range(1, total_steps + 1):
        optimizer.zero_grad(set_to_none=True)  # before: an accumulating loss_fn fills the gradients
        result = loss_fn(step)
        out.forward_passes += result.forward_passes
        if result.forget_accuracy is not None:
            out.final_forget_accuracy = result.forget_accuracy
            if cfg.target is not None and result.forget_accuracy <= cfg.target:
                out.stopped = "target"
                out.log.append({"step": step - 1, "forget_accuracy": result.forget_accuracy})
                return True
        if not _update(step, result, cfg, named, frozen, optimizer, guard, out, bar):
            return False
        entry = out.log[-1]
        if retain_accuracy is not None and cfg.retain_floor is not None and step % cfg.eval_every == 0:
            entry["retain_accuracy"] = _evaluate(model, retain_accuracy, out)
            if entry["retain_accuracy"] < cfg.retain_floor:
                _undo_step(guard, out, "retain budget", f"step {step} took retain accuracy to "
                                                        f"{entry['retain_accuracy']:.3f} < {cfg.retain_floor:.3f}")
                return False
            entry["forget_accuracy"] = _evaluate(model, forget_accuracy, out)
            if cfg.target is not None and entry["forget_accuracy"] <= cfg.target:
                out.stopped = "target"
                return False
            if cfg.forget_ceiling is not None and entry["forget_accuracy"] > cfg.forget_ceiling:
                _undo_step(guard, out, "forget ceiling", f"step {step} took forget accuracy to "
                                                         f"{entry['forget_accuracy']:.3f} > {cfg.forget_ceiling:.3f}")
                return False
        if on_step is not None and on_step(step, entry):
            out.stopped = "callback"
            return False
    return False


UNDONE = ("retain budget", "forget ceiling")  # the stops that put back the weights before their step


def _undo_step(guard: DivergenceGuard, out: Outcome, stopped: str, why: str) -> None:
    """Stop at ``stopped`` (one of `UNDONE`) with the weights before this step (or the last snapshot)."""
    guard.snapshot.restore()
    out.stopped = stopped
    out.steps = guard.snapshot_step
    out.notes.append(f"stopped at the {stopped}: {why}; kept the weights after step {guard.snapshot_step}")


def _update(step: int, result: StepLoss, cfg: LoopSettings, named, frozen,
            optimizer: torch.optim.Optimizer, guard: DivergenceGuard, out: Outcome, bar: Any) -> bool:
    loss = float(result.loss.detach())
    if not guard.check_loss(step, loss, result.parts):
        return False
    if not result.accumulated:  # the gradients were cleared before loss_fn (`_run`)
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
    if frozen is not None and cfg.weight_decay:
        with torch.no_grad():
            for n, p in named:
                mask, original = frozen.get(n, (None, None))
                if mask is not None and original is not None:  # decay moved masked-out entries
                    p.copy_(torch.where(mask, p, original))
    out.steps = step
    entry: dict[str, Any] = {"step": step, "loss": loss, **result.parts, "grad_norm": grad_norm}
    if result.forget_accuracy is not None:
        entry["forget_accuracy"] = result.forget_accuracy
    out.log.append(entry)
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
    if result.forget_accuracy is not None:
        out.final_forget_accuracy = result.forget_accuracy
    if guard.check_loss(out.steps + 1, float(result.loss), result.parts):
        guard.check_params(out.steps + 1)
