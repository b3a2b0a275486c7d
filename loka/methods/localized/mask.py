"""`loka-mask`: learn one output scale per attributed component, commit it as a ``rescale`` plan.

The top-``k`` components get a scale ``s = sigmoid(theta) / sigmoid(theta0)`` (exactly 1 at
the start ``theta = theta0``, at most ``1 / sigmoid(theta0)``), applied to their activation by
pre-hooks on the modules that own their write slices; the model's own weights are frozen. The loop
minimises forget unlikelihood + ``retain_weight`` x retain NLL + ``sparsity`` x mean ``|1 - s|``
(an L1 pull back to "unchanged"). Scales within ``round_tol`` of 1 are rounded to exactly 1 and
dropped; the rest are committed as per-component factors of one `AblationPlan.rescale`, which
multiplies each component's write slice — the same as scaling its activation.

Example:
    >>> result = unlearn(art.base_dir, task, method="loka-mask", k=128)   # doctest: +SKIP
    >>> result.plan["mode"], len(result.plan["factor"])                  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from attribution.components import Component, ModelShape
from loka.engine import AblationPlan, Provenance, adapter_for, commit
from loka.evaluate import FirstTokenEval
from loka.methods.config import knob
from loka.methods.localized.common import (
    analysis_bridge,
    copy_weights_back,
    fact_batches,
    rank_on,
    ranking_seconds_reused,
)
from loka.methods.localized.objective import LoopConfig, optimise_localized
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@contextmanager
def scaled_writes(model: Any, components: list[Component], scales: Callable[[], Tensor]) -> Iterator[None]:
    """Scale each component's input to its write projection by ``scales()[i]`` (HF pre-hooks).

    A component's write slice indexes the input features of the module that owns it (an
    ``nn.Linear`` column block, a GPT-2 ``Conv1D`` row block), so scaling those input features
    is exactly what committing ``rescale`` to the write slice does. Hooks go even on error.
    """
    adapter, modules = adapter_for(model), dict(model.named_modules())
    groups: dict[str, list[tuple[int, int, int]]] = {}
    for i, c in enumerate(components):
        write = adapter.params(c).write
        groups.setdefault(write.param.rsplit(".", 1)[0], []).append((write.start, write.stop, i))

    def make(spans: list[tuple[int, int, int]]) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple) -> tuple:
            x, s = args[0], scales().to(args[0].dtype)
            ones = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
            return (x * torch.cat(_pieces(ones, spans, s.to(x.device))), *args[1:])

        return hook

    handles = [modules[name].register_forward_pre_hook(make(spans)) for name, spans in groups.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _pieces(ones: Tensor, spans: list[tuple[int, int, int]], s: Tensor) -> list[Tensor]:
    """``ones`` with ``[start:stop]`` replaced by ``s[i]``, as differentiable pieces."""
    out, at = [], 0
    for start, stop, i in sorted(spans):
        out += [ones[at:start], s[i].expand(stop - start)]
        at = stop
    return [*out, ones[at:]]


@dataclass(frozen=True)
class Config(LoopConfig):
    k: int = knob(256, ge=1, help="how many top-ranked components get a learned scale")
    lr: float = knob(0.1, gt=0, help="Adam learning rate of the scale logits")
    sparsity: float = knob(0.01, ge=0, help="L1 pull of every scale back to 1")
    round_tol: float = knob(0.05, ge=0, le=1, help="scales within this of 1 are dropped")
    theta0: float = knob(3.0, ge=0, help="initial logit (scale = sigmoid(theta)/sigmoid(theta0))")


@register("loka-mask", Config, family="loka", compare=False, cost=60,
          summary="a learned output scale per attributed component, committed as a rescale plan")
def loka_mask(hf_model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
              progress: bool) -> UnlearnResult:
    """Learned per-component rescale (module docstring); the plan is in ``result.plan``."""
    t0 = time.perf_counter()
    kinds = cfg.kind_tuple()
    forget, retain = fact_batches(tokenizer, task, seed=seed)
    bridge = analysis_bridge(hf_model, tokenizer)  # ranks now, receives the plan at the end
    ranking = rank_on(bridge, forget, retain, cfg, ablation=cfg.ablation,
                      sample=cfg.rank_sample)
    components = ranking.top(cfg.k, kinds)
    flags = {name: p.requires_grad for name, p in hf_model.named_parameters()}
    for p in hf_model.parameters():
        p.requires_grad_(False)
    theta = nn.Parameter(torch.full((len(components),), float(cfg.theta0)))
    norm = 1 / (1 / (1 + math.exp(-cfg.theta0)))
    scales = lambda: torch.sigmoid(theta) * norm  # noqa: E731
    try:
        with scaled_writes(hf_model, components, scales):
            outcome = optimise_localized(hf_model, [("theta", theta)], forget, retain, cfg,
                                         penalty=lambda: cfg.sparsity * (1 - scales()).abs().mean(),
                                         progress=progress)
    finally:
        for name, p in hf_model.named_parameters():
            p.requires_grad_(flags[name])
    learned = scales().detach().tolist()
    kept = [(c, s) for c, s in zip(components, learned, strict=True) if abs(1 - s) >= cfg.round_tol]
    result = UnlearnResult(
        method="loka-mask", model=hf_model, tokenizer=tokenizer, seconds=0.0, params_changed=0,
        settings=cfg.to_dict(), steps=outcome.steps,
        forward_passes=outcome.forward_passes + ranking.forward_passes,
        backward_passes=outcome.backward_passes + ranking.backward_passes,
        diverged=outcome.diverged, diverged_step=outcome.diverged_step, log=outcome.log,
        ranking=ranking.summary() | {"seconds": round(ranking.seconds, 3)},
        notes=[f"stopped: {outcome.stopped} at soft-mask forget accuracy "
               f"{outcome.final_forget_accuracy:.3f}; {len(kept)} of {len(components)} scales "
               f"kept (|1 - s| >= {cfg.round_tol})", *outcome.notes])
    if kept:
        plan = AblationPlan.rescale([c for c, _ in kept], [s for _, s in kept],
                                    shape=ModelShape.of(bridge),
                                    provenance=Provenance(ranking_method=cfg.ranking_method,
                                                          model_id=str(bridge.cfg.model_name),
                                                          data_hash=forget.hash))
        journal = commit(bridge, plan)
        copy_weights_back(bridge, hf_model)
        result.notes.append(f"committed forget accuracy {FirstTokenEval.from_batch(forget)(hf_model):.3f}")
        result.plan, result.params_changed = plan.to_dict(), journal.n_changed()
    result.seconds = time.perf_counter() - t0 + ranking_seconds_reused(ranking)
    return result
