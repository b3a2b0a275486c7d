"""Run every baseline with its `DEFAULTS` on a world and print the table of what it cost and did.

Forget and retain-eval accuracy are first-token accuracy on ``world.facts("forget")`` and
``world.facts("retain_eval")`` (the part no method sees). Run it with::

    .venv/bin/python -m loka.methods.baselines.table --preset default --threads 1

``--set npo.lr=3e-4`` overrides one setting (repeatable); ``--methods npo,grad_diff`` picks some.
"""

from __future__ import annotations

import argparse
import ast
import json
from typing import Any

ORDER = ("base", "retrain", "gradient_ascent", "grad_diff", "npo", "task_vector", "counterexample",
         "output_suppression")


def _overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, _, value = item.partition("=")
        method, _, name = key.partition(".")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault(method, {})[name] = parsed
    return out


def measure(preset: str, methods: list[str], overrides: dict[str, dict[str, Any]], seed: int = 0) -> list[dict]:
    from loka.evaluate import first_token_accuracy
    from loka.methods import task_from_world, unlearn
    from loka.methods.baselines.output_suppression import RefusalFilter
    from loka.models import load_hf
    from loka.world.build import load_world

    art = load_world(preset, progress=False)
    task, world = task_from_world(art), art.world
    forget, retain_eval = world.facts("forget"), world.facts("retain_eval")
    rows = []
    for method in methods:
        settings = dict(overrides.get(method, {}))
        if method == "base":
            model, tok = load_hf(art.base_dir)
            row = {"seconds": 0.0, "params_changed": 0, "steps": 0, "diverged": False}
        else:
            if method == "retrain":
                settings.setdefault("retrain_dir", str(art.retrain_dir))
            result = unlearn(art.base_dir, task, method=method, seed=seed, progress=False, **settings)
            model, tok = result.model, result.tokenizer
            row = {k: result.summary()[k] for k in ("seconds", "params_changed", "steps", "diverged")}
            settings = result.settings
        acc = {"forget": first_token_accuracy(model, tok, forget),
               "retain_eval": first_token_accuracy(model, tok, retain_eval)}
        if method == "output_suppression":  # what a user of the filtered model sees
            f = RefusalFilter.from_dict(result.refusal_filter)
            kept = [x for x in forget if not f.applies(x.prompt)]  # refused prompts are misses
            acc["forget_filtered"] = first_token_accuracy(model, tok, kept) * len(kept) / len(forget) if kept else 0.0
        rows.append({"method": method, **{k: round(v, 4) for k, v in acc.items()}, **row, "settings": settings})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| method | forget acc | retain-eval acc | seconds | params changed | steps |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        forget = f"{r['forget']:.3f}" + (f" (filtered: {r['forget_filtered']:.3f})" if "forget_filtered" in r else "")
        lines.append(f"| {r['method']} | {forget} | {r['retain_eval']:.3f} | {r['seconds']:.1f} | "
                     f"{r['params_changed']:,} | {r['steps']}{' (diverged)' if r['diverged'] else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--methods", default=",".join(ORDER))
    p.add_argument("--set", action="append", default=[], metavar="METHOD.NAME=VALUE")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(args.preset, args.methods.split(","), _overrides(args.set), args.seed)
    print(markdown(rows))


if __name__ == "__main__":
    main()
