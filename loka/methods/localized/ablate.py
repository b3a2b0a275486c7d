"""`loka`: iterative ablation — ablate the top few attributed components, re-rank, repeat.

Each round ranks every component on the *edited* model (so redundant backups that take over
once a component is gone can be found next), commits the ``per_round`` best-contrast
components not yet chosen (``zero`` or ``mean`` mode) through the engine, and measures
first-token accuracy on the forget and retain facts. It stops when forget accuracy reaches
``forget_target``, when ``max_components`` are chosen, or when retain accuracy has dropped more
than ``retain_budget`` below its start (that last round is undone). The rounds are then undone
and their union committed as one `AblationPlan` — the plan the result carries — whose edit is
the same as the rounds' (each component's edit only reads its own slices).

Example:
    >>> result = unlearn(art.base_dir, task, method="loka", mode="mean", per_round=16)  # doctest: +SKIP
    >>> [(r["round"], r["forget_accuracy"]) for r in result.log]                       # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from attribution.components import ModelShape
from attribution.data import FactBatch
from loka.engine import AblationPlan, EditSession, Provenance, commit, mean_activations
from loka.evaluate import FirstTokenEval
from loka.methods.config import knob
from loka.methods.localized.common import (
    LocalizedConfig,
    analysis_bridge,
    copy_weights_back,
    fact_batches,
    rank_on,
    ranking_seconds_reused,
)
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class Config(LocalizedConfig):
    mode: Literal["zero", "mean"] = knob("zero", help="how a chosen component is ablated")
    per_round: int = knob(16, ge=1, help="components ablated per round (halved after a rejected round)")
    max_components: int = knob(512, ge=1, help="most components ablated in all")
    max_rounds: int = knob(64, ge=1, help="most rounds")
    forget_target: float = knob(0.05, ge=0, le=1, help="stop at this forget first-token accuracy")
    retain_budget: float = knob(0.05, ge=0, le=1, help="most retain accuracy a round may cost")
    retain_sample: int = knob(1024, ge=1, help="retain facts measured and ranked each round")


def _accuracies(bridge: Any, plain: Any, checks: tuple[FirstTokenEval, ...]) -> tuple[float, ...]:
    """Forget and retain accuracy of the bridge's current (edited) weights, measured on the plain
    HF model they are copied into: the engine's edits are weight edits, so the logits are the
    same, and the plain model skips the bridge's hook machinery (~1.4x faster here)."""
    copy_weights_back(bridge, plain)
    return tuple(check(plain) for check in checks)


def _plan(bridge: Any, components: list, mode: str, retain: FactBatch, means: list) -> AblationPlan:
    if mode == "zero":
        return AblationPlan.zero(components)
    new = mean_activations(bridge, retain.input_ids, retain.attention_mask, components)
    means.extend(new)
    return AblationPlan.mean(components, new)


@register("loka", Config, family="loka", cost=100,
          summary="iterative attributed ablation: ablate the top components, re-rank, repeat")
def loka_ablate(hf_model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
                progress: bool) -> UnlearnResult:
    """Iterative attributed ablation (module docstring); the final plan is in ``result.plan``."""
    t0 = time.perf_counter()
    mode, per_round, max_components = cfg.mode, cfg.per_round, cfg.max_components
    forget_target, retain_budget, kind_tuple = cfg.forget_target, cfg.retain_budget, cfg.kind_tuple()
    forget, retain = fact_batches(tokenizer, task, seed=seed)
    retain = retain[: min(cfg.retain_sample, len(retain))]  # a random sample: retain was shuffled
    bridge = analysis_bridge(hf_model, tokenizer)
    session = EditSession(bridge)
    checks = (FirstTokenEval.from_batch(forget), FirstTokenEval.from_batch(retain))
    start_f, start_r = _accuracies(bridge, hf_model, checks)
    log = [{"round": 0, "components": 0, "forget_accuracy": start_f, "retain_accuracy": start_r}]
    chosen: list = []
    excluded: set = set()  # components that alone broke the retain budget
    means: list = []
    fwd = bwd = 0
    reused_seconds = 0.0  # rankings computed elsewhere (`rankings_reused`): their cost counts
    size, stopped, ranking = per_round, "max_rounds", None
    for round_no in range(1, cfg.max_rounds + 1):
        if log[-1]["forget_accuracy"] <= forget_target or len(chosen) >= max_components:
            stopped = "target" if log[-1]["forget_accuracy"] <= forget_target else "max_components"
            break
        if ranking is None:  # re-rank on the edited model (kept after a rejected round)
            ranking = rank_on(bridge, forget, retain, cfg, ablation=mode)
            fwd, bwd = fwd + ranking.forward_passes, bwd + ranking.backward_passes
            reused_seconds += ranking_seconds_reused(ranking)
        score = dict(zip(ranking.components, ranking.contrast_scores.tolist(), strict=True))
        skip = set(chosen) | excluded
        new = [c for c in ranking.top(len(ranking), kind_tuple) if c not in skip and score[c] > 0]
        new = new[: min(size, max_components - len(chosen))]
        if not new:
            stopped = "no_positive_contrast"
            break
        n_means = len(means)
        session.commit(_plan(bridge, new, mode, retain, means))
        f, r = _accuracies(bridge, hf_model, checks)
        entry = {"round": round_no, "components": len(chosen) + len(new), "forget_accuracy": f,
                 "retain_accuracy": r, "ranking_seconds": round(ranking.seconds, 3)}
        if start_r - r > retain_budget:
            # Too much damage: undo, then retry with half as many (a lone culprit is excluded).
            session.undo_last()
            del means[n_means:]
            log.append(entry | {"rejected": len(new)})
            if len(new) == 1:
                excluded.add(new[0])
            size = max(1, len(new) // 2)
            continue
        chosen += new
        log.append(entry)
        ranking, size = None, min(per_round, 2 * size)  # recover the round size after a backoff
    accepted = [e for e in log if "rejected" not in e]
    session.undo_all()
    copy_weights_back(bridge, hf_model)  # the caller's model is the original again
    result = UnlearnResult(
        method="loka", model=hf_model, tokenizer=tokenizer,
        settings=cfg.to_dict(), details={"retain_sampled": len(retain)},
        seconds=0.0, params_changed=0, steps=len(log) - 1, forward_passes=fwd, backward_passes=bwd,
        log=log, notes=[f"stopped: {stopped} after {len(chosen)} components; forget accuracy "
                        f"{accepted[-1]['forget_accuracy']:.3f}, retain {accepted[-1]['retain_accuracy']:.3f}"
                        f" (start {start_f:.3f}, {start_r:.3f}); {len(excluded)} excluded"])
    if chosen:
        plan = AblationPlan(tuple(chosen), mode, means=tuple(means) if mode == "mean" else None,
                            shape=ModelShape.of(bridge),
                            provenance=Provenance(ranking_method=cfg.ranking_method,
                                                  model_id=str(bridge.cfg.model_name),
                                                  data_hash=forget.hash,
                                                  extra={"rounds": len(log) - 1, "stopped": stopped}))
        journal = commit(bridge, plan)
        copy_weights_back(bridge, hf_model)
        result.plan, result.params_changed = plan.to_dict(), journal.n_changed()
    result.seconds = time.perf_counter() - t0 + reused_seconds
    return result
