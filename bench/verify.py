"""Verifier cost: seconds, items/s and peak memory per component, and one full verification.

    python -m bench.verify [--preset default] [--model base|retrain|DIR] [--json]

Two measurements of one model on the world, in one process:
1. Per component, on a fresh `loka.verify.measure.Measurements` (each result cached, in the
   order `verify` asks for them, so a later component reuses earlier forward passes exactly as
   in a real run): accuracy, MIA, truth ratio, probes, relearn, extraction, perplexity, and the
   retrain reference's own measurements (MIA, truth ratio, relearn) that PrivLeak, forget
   quality and the relearning reference need. Items are what each component processes:
   - accuracy: fact prompts forwarded (every split and template family it reports);
   - mia: texts scored, members (forget facts + passages) and non-members (holdout);
   - truth_ratio: wrong answers scored (forget facts x ``n_perturbed``);
   - probes: subject prefixes run for residual-stream activations;
   - relearn: fact rows trained on (steps x half the forget facts) + fact rows evaluated;
   - extraction: forget passages continued greedily;
   - perplexity: retain-eval sentences + retain passages;
   - reference: the retrain model's items for the same three measurements.
2. ``full``: `loka.verify.verify(model_dir, world, retrain=retrain_dir)` from checkpoint paths,
   cold (nothing cached), as ``loka verify`` runs it: the number the <= 60 s target is about.

Peak memory is the process's peak resident set (``VmHWM``, reset before each component where
Linux allows it; the torch CUDA peak too with ``--device cuda``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench._common import PeakMemory, Timer, finish, log, machine, parser, print_table, setup, sync


def counts(data: Any, settings: Any) -> dict[str, int]:
    """Items each component processes (see the module doc)."""
    from loka.verify.measure import ACCURACY_SPLITS, MIA_SPLITS
    from loka.verify.probes import subject_prefixes

    n = lambda split, kind="train": len(data.fact_set(split, kind))  # noqa: E731
    passages = lambda split: len(data.passages.get(split, ()))  # noqa: E731
    forget = n("forget")
    half = forget // 2  # relearning trains on about half the forget people's facts
    evals = settings.relearn_steps // settings.relearn_eval_every + 1
    subjects = data.subjects("retain_train", "retain_eval", "forget", "holdout")
    mia = sum(n(s) + passages(s) for s in MIA_SPLITS)
    truth = forget * settings.n_perturbed
    relearn = settings.relearn_steps * half + evals * forget
    return {
        "accuracy": sum(n(s, k) for s, k in data.facts if s in ACCURACY_SPLITS),
        "mia": mia, "truth_ratio": truth,
        "probes": sum(len(subject_prefixes(data, s)) for s in subjects),
        "relearn": relearn, "extraction": passages("forget"),
        "perplexity": n("retain_eval") + passages("retain"),
        "reference": mia + truth + relearn,
    }


def components(me: Any, ref: Any) -> dict[str, Any]:
    """What each component asks of the cached measurements (the order `verify` follows)."""
    def reference() -> None:
        ref.mia(), ref.truth_ratios(), ref.relearn()
        me.mia(ref)  # the reference attack, with the retrain model's NLLs

    return {"accuracy": me.accuracy, "mia": me.mia, "truth_ratio": me.truth_ratios,
            "probes": me.probes, "relearn": me.relearn, "extraction": me.extraction,
            "perplexity": me.perplexity, "reference": reference}


def model_dir(art: Any, which: str) -> Path:
    return {"base": art.base_dir, "retrain": art.retrain_dir}.get(which) or Path(which).expanduser()


def run(args: Any, device: str) -> dict[str, Any]:
    from loka.verify import verifier
    from loka.verify.data import VerifyData
    from loka.verify.loaded import load_model
    from loka.verify.measure import Measurements, VerifySettings
    from loka.world.build import load_world

    art = load_world(args.preset, progress=False)
    path, settings = model_dir(art, args.model), VerifySettings(threads=args.threads)
    with Timer() as t_data:
        data = VerifyData.from_world(art)
    me = Measurements(load_model(path, name=args.model, device=device), data, settings)
    ref = Measurements(load_model(art.retrain_dir, name="retrain", device=device), data, settings)
    items = counts(data, settings)
    rows: dict[str, Any] = {}
    for name, fn in components(me, ref).items():
        log(f"component {name}")
        with PeakMemory(device) as mem, Timer() as t:
            fn()
            sync(device)
        rows[name] = {"seconds": t.seconds, "items": items[name],
                      "items_per_second": items[name] / t.seconds, **mem.to_dict()}
    log("full verification, cold")
    with PeakMemory(device) as mem, Timer() as t:
        report = verifier.verify(path, data, retrain=art.retrain_dir, name=args.model,
                                 settings=settings, device=device)
        sync(device)
    total_items = sum(r["items"] for r in rows.values())
    total_s = sum(r["seconds"] for r in rows.values())
    return {"preset": args.preset, "model": args.model, "machine": machine(device),
            "verify_settings": settings.to_dict(), "data_seconds": t_data.seconds,
            "components": rows, "components_seconds": total_s, "components_items": total_items,
            "items_per_second": total_items / total_s,
            "full": {"seconds": t.seconds, "report_verify_seconds": report.verify_seconds,
                     "forget_accuracy": report.forget_accuracy, "retain_accuracy": report.retain_accuracy,
                     **mem.to_dict()},
            "target_seconds": 60.0, "target_met": t.seconds <= 60.0}


def render(out: dict[str, Any]) -> None:
    rows = [(name, r["seconds"], r["items"], r["items_per_second"], r["peak_rss_mib"])
            for name, r in out["components"].items()]
    rows.append(("all components", out["components_seconds"], out["components_items"],
                 out["items_per_second"], max(r["peak_rss_mib"] for r in out["components"].values())))
    f = out["full"]
    rows.append(("full verify (cold)", f["seconds"], None, None, f["peak_rss_mib"]))
    print_table(f"verifier on {out['preset']} ({out['model']}; target <= 60 s: "
                f"{'met' if out['target_met'] else 'NOT met'})",
                ("component", "seconds", "items", "items/s", "peak RSS MiB"), rows)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.verify", __doc__)
    p.add_argument("--model", default="base", help="base, retrain, or a checkpoint directory")
    args = p.parse_args(argv)
    device = setup(args)
    return finish(run(args, device), args.json, render)


if __name__ == "__main__":
    raise SystemExit(main())
