"""Task-vector negation (Ilharco et al. 2023; seed 000): subtract what fine-tuning on the forget set adds.

1. Fine-tune the model on the forget set (descent on the forget NLL: answers and passage tokens).
2. ``tau = finetuned - base``; the result is ``base - scale * tau`` (``scale=0``: the base, exactly).

The fine-tuning runs in place on the caller's copy with a CPU copy of the base weights kept aside,
so no second model is held. With ``forget_target`` set, ``scale`` is the largest scale tried: the
result uses the smallest of ``scale * k / 8`` (k = 1..8) that reaches the target — and never one
past the retain budget (`TrainConfig`): the largest scale that keeps it, 0 (the base) if none.

>>> result = unlearn(base_dir, task, method="task_vector", scale=2.0, epochs=10)   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from loka.evaluate import FirstTokenEval
from loka.memory import is_large
from loka.methods.baselines.common import MethodData, TrainConfig, result_from, retain_floor
from loka.methods.batches import item_nll
from loka.methods.config import knob
from loka.methods.guard import ParamSnapshot
from loka.methods.loop import StepLoss, optimise
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class Config(TrainConfig):
    lr: float = knob(3e-4, gt=0, help="learning rate of the fine-tuning on the forget set")
    scale: float = knob(4.0, ge=0, help="base - scale * task vector; with forget_target the largest tried")


@torch.no_grad()
def negate(named: list[tuple[str, torch.nn.Parameter]], base: ParamSnapshot,
           finetuned: ParamSnapshot, scale: float) -> None:
    """Write ``base - scale * (finetuned - base)`` into the parameters."""
    for n, p in named:
        b = base.value(n)
        p.copy_((b - scale * (finetuned.value(n) - b)).to(p.device))


@register("task_vector", Config, family="baseline", cost=30,
          summary="task-vector negation: fine-tune on the forget set, subtract scale x the change")
def task_vector(model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
                progress: bool) -> UnlearnResult:
    """Fine-tune on the forget set, then move the base ``scale`` times the other way."""
    data = MethodData.build(model, tokenizer, task, cfg, seed=seed, need_retain=False, method="task_vector")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    large = is_large(sum(p.numel() for _, p in named))
    base = ParamSnapshot(named, on_disk=large)  # a large model's two copies wait on disk
    floor, keep = retain_floor(model, tokenizer, task, cfg)

    def loss_fn(step: int) -> StepLoss:
        nll = item_nll(model, data.next_forget()).mean()
        return StepLoss(nll, {"forget_loss": float(nll.detach()), "forget_nll": float(nll.detach())})

    fine_tune = cfg.loop()
    outcome = optimise(model, loss_fn, fine_tune, total_steps=cfg.total_steps(len(data.forget)),
                       params=named, limits={"forget_nll": cfg.max_forget_nll}, progress=progress,
                       desc="task_vector (fine-tune)")
    finetuned = ParamSnapshot(named, on_disk=large)
    scale = cfg.scale
    if cfg.forget_target is not None and task.forget:
        check = FirstTokenEval(tokenizer, task.forget)
        for k in range(1, 9):
            negate(named, base, finetuned, cfg.scale * k / 8)
            outcome.forward_passes += 1
            if keep is not None and floor is not None:
                outcome.forward_passes += 1
                if keep() < floor:
                    scale = cfg.scale * (k - 1) / 8
                    outcome.notes.append(f"scale {cfg.scale * k / 8:g} broke the retain budget "
                                         f"(retain accuracy < {floor:.3f})")
                    break
            if check(model) <= cfg.forget_target:
                scale = cfg.scale * k / 8
                break
    negate(named, base, finetuned, scale)
    outcome.params_changed = base.changed()
    base.close()
    finetuned.close()
    outcome.notes.append(f"negated the task vector with scale {scale:g}")
    return result_from("task_vector", model, tokenizer, cfg.to_dict(), outcome)
