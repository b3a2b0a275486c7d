"""Attribution benchmark on a world's base model, in one process.

    python -m bench.attribution [--preset default] [--items 128] [--k 32] [--json]

Measures, on ``--items`` forget and ``--items`` retain facts: seconds and forward/backward
passes of exhaustive (batched) activation patching over every neuron and head, attribution
patching (atp), integrated gradients and activation statistics, each also as forward-equivalents
(seconds / one clean forward pass over the same prompts); Spearman correlation over all
components and top-50 overlap of atp's contrast ranking with exhaustive patching's; the speedup
of batched over one-component-per-pass patching on the same 64 components (best of three,
with batched full passes alongside to show what resuming from the clean pass adds); and whether zero-
ablating the top-k atp components lowers the forget answer log-prob >= 3x more than k random
neurons (mean over ``--draws`` random draws; neurons only, see `_topk_vs_random`).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch
from scipy.stats import spearmanr

from attribution import item_metric, rank, tokenize_facts
from attribution.ablation import Ablator
from attribution.components import ModelShape
from attribution.patching import patch_effects, patch_effects_loop


def _facts(art, split: str, n: int, tok, n_ctx: int, seed: int):
    facts = list(art.world.facts(split))
    random.Random(seed).shuffle(facts)
    facts = facts[:n]
    return tokenize_facts(tok, [f.prompt for f in facts], [f.answer for f in facts], max_len=n_ctx)


@torch.inference_mode()
def _forget_metric(bridge, forget, plan=None) -> float:
    from loka.engine import preview

    if plan is None:
        return float(item_metric(bridge(forget.input_ids, attention_mask=forget.attention_mask), forget).mean())
    with preview(bridge, plan):
        return _forget_metric(bridge, forget)


def run(preset: str, items: int, k: int, draws: int, seed: int) -> dict:
    from loka.engine import AblationPlan
    from loka.io.models import load_bridge
    from loka.world.build import load_world

    art = load_world(preset, progress=False)
    bridge = load_bridge(art.base_dir)
    tok, n_ctx = bridge.tokenizer, bridge.cfg.n_ctx
    forget = _facts(art, "forget", items, tok, n_ctx, seed)
    retain = _facts(art, "retain_train", items, tok, n_ctx, seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for batch in (forget, retain):
            bridge(batch.input_ids, attention_mask=batch.attention_mask)
    forward_s = time.perf_counter() - t0
    out: dict = {"preset": preset, "items_per_set": items, "one_forward_seconds": forward_s,
                 "threads": torch.get_num_threads()}
    rankings = {}
    for method, ablation, opts in (("patch", "zero", {"progress": False}), ("atp", "zero", {}),
                                   ("ig", "zero", {}), ("actstats", None, {})):
        r = rank(bridge, forget, retain, method, ablation, **opts)
        rankings[method] = r
        out[f"{method}_seconds"] = r.seconds
        out[f"{method}_forward_passes"], out[f"{method}_backward_passes"] = r.forward_passes, r.backward_passes
        out[f"{method}_forward_equivalents"] = r.seconds / forward_s
    out["exhaustive_seconds"] = out["patch_seconds"]
    out["n_components"] = len(rankings["patch"])
    out["speedup_vs_exhaustive"] = out["patch_seconds"] / out["atp_seconds"]
    exact, approx = rankings["patch"], rankings["atp"]
    out["spearman"] = float(spearmanr(exact.contrast_scores, approx.contrast_scores).statistic)
    out["spearman_forget"] = float(spearmanr(exact.forget_scores, approx.forget_scores).statistic)
    out["top50_overlap"] = len(set(exact.top(50)) & set(approx.top(50))) / 50
    out |= _batched_vs_loop(bridge, forget, exact)
    out |= _topk_vs_random(bridge, forget, approx, k, draws, seed, AblationPlan)
    return out


def _batched_vs_loop(bridge, forget, ranking, repeats: int = 3) -> dict:
    """Patching the same 64 components three ways, interleaved ``repeats`` times (best of each:
    the machine's noise only ever adds time): the default (batched, resumed from the clean pass at
    the patched layer), batched full passes, and one component per full pass."""
    comps = list(ranking.components[:: max(1, len(ranking) // 64)])[:64]
    ablator = Ablator.fit(bridge, None, [], "zero")
    ways = {"batched": lambda: patch_effects(bridge, forget, comps, ablator, progress=False),
            "batched_full_pass": lambda: patch_effects(bridge, forget, comps, ablator, resume=False, progress=False),
            "loop": lambda: patch_effects_loop(bridge, forget, comps, ablator)}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    effects = {}
    for _ in range(repeats):
        for name, way in ways.items():
            t0 = time.perf_counter()
            effects[name], _ = way()
            seconds[name].append(time.perf_counter() - t0)
    best = {name: min(s) for name, s in seconds.items()}
    return {"batched_vs_loop_components": len(comps), "batched_vs_loop_repeats": repeats,
            **{f"{name}_seconds": best[name] for name in ways},
            **{f"{name}_seconds_all": seconds[name] for name in ways},
            "batched_vs_loop_speedup": best["loop"] / best["batched"],
            "batched_full_pass_vs_loop_speedup": best["loop"] / best["batched_full_pass"],
            "batched_vs_loop_max_abs_diff": float((effects["batched"] - effects["loop"]).abs().max()),
            "batched_full_pass_vs_loop_max_abs_diff": float((effects["batched_full_pass"] - effects["loop"]).abs().max())}


def _topk_vs_random(bridge, forget, ranking, k, draws, seed, AblationPlan) -> dict:
    """Top-k neurons by atp forget effect (and by contrast) vs k random neurons, zero-ablated.

    Neurons only: a random draw of the same kinds would include heads, a handful of which carry
    every fact on these small models, so the comparison would measure head count, not ranking.
    """
    clean = _forget_metric(bridge, forget)
    kinds = ("neuron",)
    top = ranking.rerank(0.0).top(k, kinds)  # by forget effect alone
    contrast_top = ranking.top(k, kinds)  # forget effect minus retain damage
    top_drop = clean - _forget_metric(bridge, forget, AblationPlan.zero(top))
    contrast_drop = clean - _forget_metric(bridge, forget, AblationPlan.zero(contrast_top))
    pool, rng = ModelShape.of(bridge).components(kinds), random.Random(seed)
    drops = [clean - _forget_metric(bridge, forget, AblationPlan.zero(rng.sample(pool, k)))
             for _ in range(draws)]
    random_drop = sum(drops) / len(drops)
    # No ratio when random ablation does not lower the metric at all (JSON has no infinity).
    ratio = (lambda d: d / random_drop if random_drop > 0 else None)  # noqa: E731
    return {"topk_k": k, "topk_kinds": "neuron", "topk_drop": top_drop,
            "topk_contrast_drop": contrast_drop, "random_drop": random_drop, "random_draws": draws,
            "topk_vs_random_ratio": ratio(top_drop), "topk_contrast_vs_random_ratio": ratio(contrast_drop)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.attribution", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--items", type=int, default=128, help="facts per set (forget, retain)")
    p.add_argument("--k", type=int, default=32, help="components ablated in the top-k check")
    p.add_argument("--draws", type=int, default=5, help="random draws in the top-k check")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = run(args.preset, args.items, args.k, args.draws, args.seed)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"attribution on {args.preset} ({out['n_components']} components, "
                        f"{args.items}+{args.items} facts, one forward {out['one_forward_seconds']:.3f}s)")
    for col in ("method", "seconds", "forward", "backward", "forward-equivalents"):
        table.add_column(col, justify="right")
    for m in ("patch", "atp", "ig", "actstats"):
        table.add_row(m, f"{out[f'{m}_seconds']:.2f}", str(out[f"{m}_forward_passes"]),
                      str(out[f"{m}_backward_passes"]), f"{out[f'{m}_forward_equivalents']:.0f}")
    Console().print(table)
    for key in ("speedup_vs_exhaustive", "spearman", "spearman_forget", "top50_overlap",
                "batched_vs_loop_speedup", "batched_full_pass_vs_loop_speedup", "topk_drop", "topk_contrast_drop", "random_drop",
                "topk_vs_random_ratio", "topk_contrast_vs_random_ratio"):
        print(f"{key:>30}: " + ("n/a" if out[key] is None else f"{out[key]:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
