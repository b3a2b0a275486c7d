"""The four built-in attribution methods, adapted to the registry's one signature.

``patch``, ``atp`` and ``ig`` measure the effect of an ablation (``zero``, ``mean`` or
``resample``, fitted on the retain set so both sets see the same intervention) and use the
``difference`` contrast; ``actstats`` measures activation magnitudes, ablates nothing and uses
the ``ratio`` contrast.
"""

from __future__ import annotations

from typing import Any

from attribution._common import Batch
from attribution.ablation import AblationKind, Ablator
from attribution.actstats import activation_stats
from attribution.atp import atp_effects
from attribution.components import Component
from attribution.ig import ig_effects
from attribution.patching import patch_effects, patch_effects_loop
from attribution.registry import MethodScores, register


def _ablator(bridge: Any, retain: Batch, components: list[Component], ablation: AblationKind | None,
             seed: int) -> Ablator:
    hooks = sorted({c.hook_name for c in components})
    return Ablator.fit(bridge, retain, hooks, ablation or "zero", seed=seed)


def patch(bridge: Any, forget: Batch, retain: Batch, components: list[Component], *,
          ablation: AblationKind | None = None, rows: int = 512, batch_size: int | None = None,
          loop: bool = False, progress: bool = True, seed: int = 0) -> MethodScores:
    """Exhaustive activation patching (batched; ``loop=True`` for one component per pass)."""
    ablator = _ablator(bridge, retain, components, ablation, seed)
    if loop:
        measured = [patch_effects_loop(bridge, s, components, ablator, batch_size=batch_size or 64,
                                       progress=progress) for s in (forget, retain)]
    else:
        sizes: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}  # None: its default
        measured = [patch_effects(bridge, s, components, ablator, rows=rows, progress=progress, **sizes)
                    for s in (forget, retain)]
    (f, fp), (r, rp) = measured
    return MethodScores(f, r, "difference", ablator.kind, ablator.forward_passes + fp + rp, 0,
                        {"rows": rows, "batch_size": batch_size, "loop": loop, "seed": seed})


def atp(bridge: Any, forget: Batch, retain: Batch, components: list[Component], *,
        ablation: AblationKind | None = None, batch_size: int = 32, graddrop: bool = False,
        seed: int = 0) -> MethodScores:
    """Attribution patching, optionally with GradDrop (AtP*)."""
    ablator = _ablator(bridge, retain, components, ablation, seed)
    f, ff, fb = atp_effects(bridge, forget, components, ablator, batch_size=batch_size, graddrop=graddrop)
    r, rf, rb = atp_effects(bridge, retain, components, ablator, batch_size=batch_size, graddrop=graddrop)
    return MethodScores(f, r, "difference", ablator.kind, ablator.forward_passes + ff + rf, fb + rb,
                        {"batch_size": batch_size, "graddrop": graddrop, "seed": seed})


def ig(bridge: Any, forget: Batch, retain: Batch, components: list[Component], *,
       ablation: AblationKind | None = None, steps: int = 20, rows: int = 512,
       seed: int = 0) -> MethodScores:
    """Integrated gradients from the ablated activation (the baseline) to the clean one."""
    ablator = _ablator(bridge, retain, components, ablation, seed)
    f, ff, fb = ig_effects(bridge, forget, components, ablator, steps=steps, rows=rows)
    r, rf, rb = ig_effects(bridge, retain, components, ablator, steps=steps, rows=rows)
    return MethodScores(f, r, "difference", ablator.kind, ablator.forward_passes + ff + rf, fb + rb,
                        {"steps": steps, "rows": rows, "seed": seed})


def actstats(bridge: Any, forget: Batch, retain: Batch, components: list[Component], *,
             ablation: AblationKind | None = None, batch_size: int = 64) -> MethodScores:
    """Selective-pruning activation statistics (mean |activation|, head-output norm)."""
    if ablation is not None:
        raise ValueError("actstats measures activations and ablates nothing; pass ablation=None")
    f, fp = activation_stats(bridge, forget, components, batch_size=batch_size)
    r, rp = activation_stats(bridge, retain, components, batch_size=batch_size)
    return MethodScores(f, r, "ratio", None, fp + rp, 0, {"batch_size": batch_size})


register("patch", patch)
register("atp", atp)
register("ig", ig)
register("actstats", actstats)
