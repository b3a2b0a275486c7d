"""LOKA's localized methods on a world: accuracy, weights changed and seconds at several k.

    python -m bench.localized --preset default --method loka-ft --k 64 128 256 512 [--set lr=1e-3]
    python -m bench.localized --preset default --method loka --k 64 256 --set mode=mean

Each run starts from a fresh copy of the world's base model. ``k`` is ``k`` for ``loka-ft`` /
``loka-mask`` and ``max_components`` for ``loka``. Prints one JSON line per run, then the world's
base and retrain numbers and the 5%-of-retrain time budget.
"""

from __future__ import annotations

import argparse
import json

from loka.cli.inputs import parse_set


def measure(art, method: str, k: int, settings: dict) -> dict:
    from loka.evaluate import first_token_accuracy
    from loka.methods import task_from_world, unlearn

    key = "max_components" if method == "loka" else "k"
    result = unlearn(art.base_dir, task_from_world(art), method, progress=False, **{key: k}, **settings)
    world, model, tok = art.world, result.model, result.tokenizer
    acc = {name: round(first_token_accuracy(model, tok, world.facts(split, kind)), 4)
           for name, split, kind in (("forget", "forget", "train"), ("retain_eval", "retain_eval", "train"),
                                     ("retain_train", "retain_train", "train"),
                                     ("forget_heldout_template", "forget", "qa"),
                                     ("holdout", "holdout", "train"))}
    return {"method": method, "k": k, "settings": settings, "accuracy": acc,
            "params_changed": result.params_changed,
            "n_params": sum(p.numel() for p in model.parameters()),
            "seconds": round(result.seconds, 2), "steps": result.steps,
            "forward_passes": result.forward_passes, "backward_passes": result.backward_passes,
            "diverged": result.diverged, "notes": result.notes}


def main(argv: list[str] | None = None) -> int:
    from loka.world.build import load_world

    p = argparse.ArgumentParser(prog="python -m bench.localized", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--method", default="loka-ft")
    p.add_argument("--k", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    art = load_world(args.preset, progress=False)
    for k in args.k:
        print(json.dumps(measure(art, args.method, k, parse_set(args.set))), flush=True)
    info = art.info()
    print(json.dumps({"base": info["base"], "retrain": info["retrain"],
                      "retrain_train_seconds": info["retrain_train_seconds"],
                      "budget_5pct_seconds": round(0.05 * info["retrain_train_seconds"], 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
