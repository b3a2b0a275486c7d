"""Every unlearning method vs retraining from scratch, in one process: seconds and accuracy.

    python -m bench.unlearn [--preset default] [--retrain-seconds measure|full|cached] [--json]

For each registered method (default settings) on the world's erasure request: wall seconds of
``unlearn(...)`` (loading the base checkpoint included), its ratio to the retrain model's
training time, and first-token accuracy on ``world.facts("forget")`` and on
``world.facts("retain_eval")`` (facts no method sees). ``retrain`` is the reference row: its
accuracy is the cached retrain checkpoint's, its seconds the training time measured here.

The retrain time (``--retrain-seconds``):
- ``measure`` (default): train the retrain recipe (`loka.world.train.train_model`,
  ``include_forget=False``, same spec, same threads) for ``--retrain-epochs`` epochs in this
  process and extrapolate: the first epoch (warm-up costs included) + (recipe epochs - 1) x the
  mean of the later epochs (every epoch packs the same documents into about the same number of
  rows, so a steady epoch costs the same);
- ``full``: train the whole recipe here (about 12 minutes on the default world at one thread);
- ``cached``: the time the world cache recorded when it was built (another process, another
  load on the machine: not a same-run ratio).

Scaling (``--scaling-methods``, ``--scales``): the same methods on a request of 2x and 4x the
forget people, made by moving retain-train people into the forget request (their facts leave
the retain set). Measured: method seconds vs request size. A retrain for a larger request trains
on fewer documents; ``retrain_seconds`` there is the measured time scaled by the retrain
corpus's token count without the moved people (an estimate, stated as such).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from bench._common import Timer, finish, log, machine, parser, print_table, setup, sync

SCALING_METHODS = "loka-ft,task_vector"  # the cheapest optimising baseline beside LOKA


def request(art: Any, extra_people: int) -> tuple[Any, list[Any], list[str]]:
    """The world's request plus the first ``extra_people`` retain-train people: (task, forget
    facts, names of the moved people)."""
    from loka.io.data import FactRecord
    from loka.methods import UnlearnTask

    world = art.world
    moved = [p.name for p in world.people_in("retain_train")[:extra_people]]
    retain_train = world.facts("retain_train")
    forget = world.facts("forget") + [f for f in retain_train if f.subject in moved]
    record = lambda facts: tuple(FactRecord(f.prompt, f.answer, f.subject, f.attribute) for f in facts)  # noqa: E731
    task = UnlearnTask(forget=record(forget),
                       retain=record([f for f in retain_train if f.subject not in moved]),
                       forget_passages=tuple(p.text for p in world.passages_in("forget")),
                       retain_passages=tuple(p.text for p in world.passages_in("retain")))
    return task, forget, moved


def retrain_token_share(art: Any, moved: list[str]) -> float:
    """Share of the retrain corpus's tokens (one epoch) left when ``moved`` people are dropped."""
    docs = art.world.training_documents(0, include_forget=False)
    tok = art.tokenizer()
    lengths = [len(ids) for ids in tok(docs, add_special_tokens=False)["input_ids"]]
    kept = sum(n for d, n in zip(docs, lengths, strict=True) if not any(m in d for m in moved))
    return kept / sum(lengths)


def measure_retrain(art: Any, mode: str, epochs: int, threads: int) -> dict[str, Any]:
    """Seconds to train the retrain model: measured here (``measure``/``full``) or cached."""
    info = art.info()
    out: dict[str, Any] = {"mode": mode, "cached_seconds": info["retrain_train_seconds"],
                           "recipe_epochs": art.spec.train.epochs}
    if mode == "cached":
        return out | {"seconds": info["retrain_train_seconds"],
                      "note": "recorded when the world was built (another process)"}
    from loka.world.train import train_model

    run_epochs = art.spec.train.epochs if mode == "full" else min(epochs, art.spec.train.epochs)
    spec = replace(art.spec.train, epochs=run_epochs, threads=threads)
    first_epoch: list[float] = []
    t0 = time.perf_counter()

    def on_step(step: int, total: int, loss: float) -> None:
        if step == total // run_epochs:  # the first epoch's last step (total counts epoch 0's rows)
            first_epoch.append(time.perf_counter() - t0)

    log(f"retrain: training {run_epochs} of {art.spec.train.epochs} epochs")
    result = train_model(art.world, art.tokenizer(), False, art.spec.model, spec, on_step)
    first = first_epoch[0] if first_epoch and run_epochs > 1 else 0.0
    later = (result.seconds - first) / (run_epochs - (1 if first else 0))  # one steady epoch
    seconds = first + later * (art.spec.train.epochs - (1 if first else 0))
    return out | {"seconds": seconds, "measured_seconds": result.seconds, "epochs_run": run_epochs,
                  "first_epoch_seconds": first, "steady_epoch_seconds": later,
                  "steps_run": result.steps, "threads": threads}


def run_method(art: Any, task: Any, method: str, forget: list[Any], device: str,
               seed: int) -> dict[str, Any]:
    """One method from a fresh copy of the base model: seconds and accuracies reached."""
    from loka.evaluate import first_token_accuracy
    from loka.methods import unlearn

    settings = {"retrain_dir": str(art.retrain_dir)} if method == "retrain" else {}
    with Timer() as t:
        result = unlearn(art.base_dir, task, method=method, seed=seed, progress=False,
                         device=device, **settings)
        sync(device)
    model, tok = result.model, result.tokenizer
    row = {"seconds": t.seconds, "method_seconds": result.seconds, "steps": result.steps,
           "params_changed": result.params_changed, "diverged": result.diverged,
           "forget_accuracy": first_token_accuracy(model, tok, forget),
           "retain_accuracy": first_token_accuracy(model, tok, art.world.facts("retain_eval"))}
    if result.refusal_filter is not None:  # what a user of the filtered model sees
        from loka.io.refusal import RefusalFilter

        f = RefusalFilter.from_dict(result.refusal_filter)
        kept = [x for x in forget if not f.applies(x.prompt)]
        row["forget_accuracy_filtered"] = (first_token_accuracy(model, tok, kept) * len(kept)
                                           / len(forget)) if kept else 0.0
    return row


def base_row(art: Any, forget: list[Any], device: str) -> dict[str, Any]:
    """The untouched base model: what every method starts from (0 seconds)."""
    from loka.evaluate import first_token_accuracy
    from loka.io.models import load_hf

    model, tok = load_hf(art.base_dir, device)
    return {"seconds": 0.0, "method_seconds": 0.0, "steps": 0, "params_changed": 0,
            "diverged": False, "ratio_to_retrain": 0.0,
            "forget_accuracy": first_token_accuracy(model, tok, forget),
            "retain_accuracy": first_token_accuracy(model, tok, art.world.facts("retain_eval"))}


def run(args: Any, device: str) -> dict[str, Any]:
    from loka.methods import names as method_names
    from loka.world.build import load_world

    art = load_world(args.preset, progress=False)
    out: dict[str, Any] = {"preset": args.preset, "machine": machine(device)}
    retrain = measure_retrain(art, args.retrain_seconds, args.retrain_epochs, args.threads)
    out["retrain"] = retrain
    names = args.methods.split(",") if args.methods else [n for n in method_names() if n != "base"]
    task, forget, _ = request(art, 0)
    out["methods"] = {"base": base_row(art, forget, device)}
    for name in names:
        log(f"method {name}")
        row = run_method(art, task, name, forget, device, args.seed)
        if name == "retrain":  # its own seconds are the cached time; use this run's
            row["seconds"] = row["method_seconds"] = retrain["seconds"]
        row["ratio_to_retrain"] = row["seconds"] / retrain["seconds"]
        out["methods"][name] = row
        log(f"{name}: {json.dumps(row)}")  # a partial record survives an interrupted run
    out["scaling"] = scaling(art, args, device, retrain["seconds"], out["methods"])
    return out


def scaling(art: Any, args: Any, device: str, retrain_seconds: float,
            done: dict[str, dict]) -> dict[str, list[dict]]:
    """Method seconds vs request size (1x = the world's forget people; its runs are reused)."""
    n = art.spec.n_forget
    curves: dict[str, list[dict]] = {m: [] for m in args.scaling_methods.split(",") if m}
    for scale in args.scales:
        extra = n * (scale - 1)
        if extra > art.spec.n_retain_train:
            log(f"scale {scale}x skipped: needs {extra} retain-train people")
            continue
        task, forget, moved = request(art, extra)
        share = retrain_token_share(art, moved)
        for name in curves:
            log(f"scaling {name} at {scale}x ({n + extra} people, {len(forget)} facts)")
            row = done[name] if extra == 0 and name in done else \
                run_method(art, task, name, forget, device, args.seed)
            curves[name].append({"scale": scale, "forget_people": n + extra,
                                 "forget_facts": len(forget), "seconds": row["seconds"],
                                 "steps": row["steps"], "forget_accuracy": row["forget_accuracy"],
                                 "retain_accuracy": row["retain_accuracy"],
                                 "retrain_seconds_estimate": retrain_seconds * share,
                                 "ratio_to_retrain": row["seconds"] / (retrain_seconds * share)})
            log(f"{name} at {scale}x: {json.dumps(curves[name][-1])}")
    return curves


def render(out: dict[str, Any]) -> None:
    r = out["retrain"]
    print_table(f"unlearning on {out['preset']} vs retrain ({r['seconds']:.1f}s, {r['mode']})",
                ("method", "seconds", "x retrain", "forget acc", "retain-eval acc", "steps"),
                [(name, m["seconds"], m["ratio_to_retrain"], m["forget_accuracy"],
                  m["retain_accuracy"], m["steps"]) for name, m in out["methods"].items()])
    rows = [(name, p["forget_people"], p["forget_facts"], p["seconds"], p["ratio_to_retrain"],
             p["forget_accuracy"], p["retain_accuracy"], p["steps"])
            for name, points in out["scaling"].items() for p in points]
    if rows:
        print_table("cost vs request size", ("method", "people", "facts", "seconds", "x retrain (est.)",
                                             "forget acc", "retain-eval acc", "steps"), rows)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.unlearn", __doc__)
    p.add_argument("--retrain-seconds", choices=("measure", "full", "cached"), default="measure")
    p.add_argument("--retrain-epochs", type=int, default=3, help="epochs trained by 'measure'")
    p.add_argument("--methods", default="", help="comma-separated (default: every registered method)")
    p.add_argument("--scaling-methods", default=SCALING_METHODS, help="'' skips the scaling runs")
    p.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args(argv)
    device = setup(args)
    return finish(run(args, device), args.json, render)


if __name__ == "__main__":
    raise SystemExit(main())
