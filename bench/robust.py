"""Robustness across model instances: LOKA's methods and the strongest baselines on world seeds.

    python -m bench.robust [--seeds 0,1,2] [--methods loka-deep,loka-ft,...] [--fresh] [--json]

Each seed is its own world and its own pair of models (base and retrain, same recipe); every
method runs on each with its defaults and is verified with every registered measurement against
that seed's retrain model (`loka.workflows.compare`). ``--fresh`` builds each world from scratch
in a private cache (a rebuilt model, not the cached one: builds differ across CPUs). Reported per
method: every verifier column per seed, and the mean and the worst seed (the worst is the one
that decides whether a default holds), plus the deep-unlearning targets (issue 17) per seed.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from bench._common import finish, log, machine, parser, print_table

METHODS = "loka-deep,loka-ft,loka,gradient_ascent,grad_diff,npo,task_vector,counterexample"
COLUMNS = {  # report key (dotted) -> short name, and which way is worse for the "worst" seed
    "forget_accuracy": ("forget", max), "retain_accuracy": ("retain", min),
    "heldout_template_forget_accuracy": ("qa", max), "probe_accuracy": ("probe", max),
    "relearn_accuracy": ("relearn", max), "mia_auc.loss": ("auc", max), "privleak": ("privleak", None),
    "extraction.exact_match_rate": ("extraction", max), "quant_recovery": ("quant", max),
    "icl_forget_accuracy": ("icl", max), "benign_relearn_accuracy": ("benign", max),
    "logit_lens_accuracy": ("lens", max), "unlearning_depth": ("uds", min),
    "perplexity": ("ppl", max), "seconds": ("s", max), "cost_vs_retrain": ("cost", max),
}  # bench.localization renders its committed runs with these: a new column needs those runs again


def _get(entry: dict[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def targets(entry: dict[str, Any], base: dict[str, Any], retrain: dict[str, Any]) -> dict[str, bool | None]:
    """Issue 17's targets for one method on one seed (None where a value is missing)."""
    v = lambda e, k: _get(e, k) if isinstance(_get(e, k), int | float) else None  # noqa: E731
    def le(key: str, margin: float) -> bool | None:
        mine, ref = v(entry, key), v(retrain, key)
        return None if mine is None or ref is None else mine <= ref + margin
    retain, base_retain = v(entry, "retain_accuracy"), v(base, "retain_accuracy")
    auc, leak = v(entry, "mia_auc.loss"), v(entry, "privleak")
    quant, quant_ref = v(entry, "quant_recovery"), v(entry, "quant_retrain_recovery")
    icl, icl_ref = v(entry, "icl_forget_accuracy"), v(entry, "icl_retrain_accuracy")
    cost = v(entry, "cost_vs_retrain")
    return {
        "forget": le("forget_accuracy", 0.05),
        "retain": None if retain is None or base_retain is None else retain >= 0.95 * base_retain,
        "heldout": le("heldout_template_forget_accuracy", 0.05), "probe": le("probe_accuracy", 0.05),
        "relearn": le("relearn_accuracy", 0.10),
        "mia": None if auc is None or leak is None else auc <= 0.65 and abs(leak) <= 25,
        "extraction": le("extraction.exact_match_rate", 0.10),
        "quantization": None if quant is None or quant_ref is None else quant <= quant_ref + 0.05,
        "icl": None if icl is None or icl_ref is None else icl <= icl_ref + 0.05,
        "cost": None if cost is None else cost <= 0.10,
    }


def run(args: Any, device: str) -> dict[str, Any]:
    from loka.workflows.compare import compare
    from loka.world.build import load_world

    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    if args.fresh:
        os.environ["LOKA_CACHE"] = tempfile.mkdtemp(prefix="loka-robust-")
    out: dict[str, Any] = {"machine": machine(device), "seeds": seeds, "fresh": args.fresh,
                           "cache": os.environ.get("LOKA_CACHE"), "per_seed": {}, "methods": {}}
    for seed in seeds:
        log(f"world seed {seed}")
        art = load_world("default", seed, progress=False)
        results = compare(art, ["base", "retrain", *methods], out=None, progress=False,
                          workers=args.workers)
        out["per_seed"][seed] = {"world": art.info(), "methods": results["methods"]}
    for name in ["base", "retrain", *methods]:
        rows = {seed: out["per_seed"][seed]["methods"][name] for seed in seeds}
        summary: dict[str, Any] = {}
        for key, (short, worse) in COLUMNS.items():
            values = [_get(rows[s], key) for s in seeds]
            nums = [x for x in values if isinstance(x, int | float) and not isinstance(x, bool)]
            summary[short] = {"per_seed": values, "mean": sum(nums) / len(nums) if nums else None,
                              "worst": (worse(nums) if worse else max(nums, key=abs)) if nums else None}
        checks = {s: targets(rows[s], out["per_seed"][s]["methods"]["base"],
                             out["per_seed"][s]["methods"]["retrain"]) for s in seeds}
        summary["targets"] = {"per_seed": checks,
                              "all_seeds": {t: all(checks[s][t] for s in seeds) if all(
                                  checks[s][t] is not None for s in seeds) else None for t in checks[seeds[0]]}}
        summary["errors"] = {s: rows[s].get("error") for s in seeds if rows[s].get("error")}
        out["methods"][name] = summary
    return out


def render(out: dict[str, Any]) -> None:
    shorts = [s for s, _ in COLUMNS.values()]
    rows = []
    for name, m in out["methods"].items():
        for which in ("mean", "worst"):
            rows.append([f"{name} ({which})"] + [m[s][which] for s in shorts])
    print_table(f"world seeds {out['seeds']} ({'fresh builds' if out['fresh'] else 'cached worlds'})",
                ["method", *shorts], rows)
    for name, m in out["methods"].items():
        if name in ("base", "retrain"):
            continue
        passed = {t: ok for t, ok in m["targets"]["all_seeds"].items()}
        print(f"{name}: targets met on every seed: {', '.join(t for t, ok in passed.items() if ok) or 'none'}; "
              f"missed: {', '.join(t for t, ok in passed.items() if ok is False) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.robust", __doc__)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--fresh", action="store_true", help="build every world from scratch in a private cache")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    from bench._common import setup

    device = setup(args)
    return finish(run(args, device), args.json, render)


if __name__ == "__main__":
    raise SystemExit(main())
