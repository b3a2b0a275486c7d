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
from typing import Any

import torch
from torch import Tensor, nn

from attribution.components import Component, ModelShape
from loka.engine import AblationPlan, Provenance, adapter_for, commit
from loka.evaluate import FirstTokenEval
from loka.methods.base import UnlearnResult, UnlearnTask, register
from loka.methods.localized.common import (
    analysis_bridge,
    check_number,
    copy_weights_back,
    fact_batches,
    parse_kinds,
)
from loka.methods.localized.loop import LoopSpec, optimise
from loka.methods.localized.ranking import check_ranker, rank_on


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


@register("loka-mask")
def loka_mask(hf_model: Any, tokenizer: Any, task: UnlearnTask, *, seed: int = 0,
              progress: bool = True, k: int = 256, kinds: str = "neuron,head",
              ranking_method: str = "atp", ablation: str = "zero", weight: float = 1.0,
              steps: int = 200, lr: float = 0.1, retain_weight: float = 1.0,
              sparsity: float = 0.01, forget_target: float | None = 0.05, retain_batch: int = 256,
              round_tol: float = 0.05, theta0: float = 3.0, rank_sample: int = 1024,
              ) -> UnlearnResult:
    """Learned per-component rescale (module docstring); the plan is in ``result.plan``."""
    t0 = time.perf_counter()
    check_number("k", k, 1, integer=True)
    for name, value in (("weight", weight), ("sparsity", sparsity), ("theta0", theta0)):
        check_number(name, value, 0)
    check_number("round_tol", round_tol, 0, 1)
    check_number("rank_sample", rank_sample, 1, integer=True)
    spec = LoopSpec(steps=steps, lr=lr, retain_weight=retain_weight, forget_target=forget_target,
                    retain_batch=retain_batch)
    kind_tuple = parse_kinds(kinds)
    check_ranker(ranking_method)
    forget, retain = fact_batches(tokenizer, task, seed=seed)
    bridge = analysis_bridge(hf_model, tokenizer)  # ranks now, receives the plan at the end
    ranking = rank_on(bridge, forget, retain, ranking_method=ranking_method, ablation=ablation,
                      kinds=kind_tuple, weight=weight, sample=rank_sample)
    components = ranking.top(k, kind_tuple)
    flags = {name: p.requires_grad for name, p in hf_model.named_parameters()}
    for p in hf_model.parameters():
        p.requires_grad_(False)
    theta = nn.Parameter(torch.full((len(components),), float(theta0)))
    norm = 1 / (1 / (1 + math.exp(-theta0)))
    scales = lambda: torch.sigmoid(theta) * norm  # noqa: E731
    try:
        with scaled_writes(hf_model, components, scales):
            report = optimise(hf_model, [("theta", theta)], forget, retain,
                              spec, penalty=lambda: sparsity * (1 - scales()).abs().mean(),
                              progress=progress)
    finally:
        for name, p in hf_model.named_parameters():
            p.requires_grad_(flags[name])
    learned = scales().detach().tolist()
    kept = [(c, s) for c, s in zip(components, learned, strict=True) if abs(1 - s) >= round_tol]
    result = UnlearnResult(
        method="loka-mask", model=hf_model, tokenizer=tokenizer, seconds=0.0, params_changed=0,
        settings={"k": k, "kinds": ",".join(kind_tuple), "ranking_method": ranking_method,
                  "ablation": ablation, "weight": weight, "sparsity": sparsity,
                  "round_tol": round_tol, "theta0": theta0, "rank_sample": rank_sample,
                  **vars(spec)},
        steps=report.steps, forward_passes=report.forward_passes + ranking.forward_passes,
        backward_passes=report.backward_passes + ranking.backward_passes,
        diverged=report.stopped == "diverged", diverged_step=report.diverged_step, log=report.log,
        ranking=ranking.summary() | {"seconds": round(ranking.seconds, 3)},
        notes=[f"stopped: {report.stopped} at soft-mask forget accuracy "
               f"{report.final_forget_accuracy:.3f}; {len(kept)} of {len(components)} scales "
               f"kept (|1 - s| >= {round_tol})", *([report.divergence] if report.divergence else [])])
    if kept:
        plan = AblationPlan.rescale([c for c, _ in kept], [s for _, s in kept],
                                    shape=ModelShape.of(bridge),
                                    provenance=Provenance(ranking_method=ranking_method,
                                                          model_id=str(bridge.cfg.model_name),
                                                          data_hash=forget.hash))
        journal = commit(bridge, plan)
        copy_weights_back(bridge, hf_model)
        result.notes.append(f"committed forget accuracy {FirstTokenEval.from_batch(forget)(hf_model):.3f}")
        result.plan, result.params_changed = plan.to_dict(), journal.n_changed()
    result.seconds = time.perf_counter() - t0
    return result
