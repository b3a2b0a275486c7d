"""Verifier cost: seconds and peak memory per registered measurement, and one full verification.

    python -m bench.verify [--preset default] [--model base|retrain|DIR] [--json]

Two measurements of one model on the world, in one process:
1. Per measurement (`loka.verify.registry`), in the order `verify` runs them, on fresh
   `Measurements` of the model, the retrain reference and the base model (each result cached,
   so a later measurement reuses earlier forward passes exactly as in a real run; the
   reference's and the base model's own work lands on the first measurement that needs it).
2. ``full``: `loka.verify.verify(model_dir, world, retrain=retrain_dir, base=base_dir)` from
   checkpoint paths, cold (nothing cached), as ``loka verify`` runs it: the number the
   <= 60 s target is about (every attack included).

Peak memory is the process's peak resident set (``VmHWM``, reset before each measurement where
Linux allows it; the torch CUDA peak too with ``--device cuda``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench._common import (
    PeakMemory,
    Timer,
    finish,
    log,
    machine,
    parser,
    print_table,
    rss_mib,
    setup,
    sync,
)


def model_dir(art: Any, which: str) -> Path:
    return {"base": art.base_dir, "retrain": art.retrain_dir}.get(which) or Path(which).expanduser()


def breakdown(ctx: Any, device: str) -> dict[str, Any]:
    """Seconds and peak RSS of each registered measurement on ``ctx`` (a verifier `Context`), in
    the order `verify` runs them; ``rss_after_mib`` is the resident set once it returned (what
    the next measurement starts from)."""
    from loka.verify.registry import measurements

    rows: dict[str, Any] = {}
    for m in measurements():
        log(f"measurement {m.name}")
        with PeakMemory(device) as mem, Timer() as t:
            reason = ("skipped by the verify settings (skip)" if m.name in ctx.settings.skip
                      else ctx.missing_need(m.needs))
            out = {} if reason else dict(m.run(ctx))
            sync(device)
        out.pop("curves", None)
        ctx.values.update(out)
        rows[m.name] = {"seconds": t.seconds, "skipped": reason, **mem.to_dict(),
                        "rss_after_mib": round(rss_mib(), 1)}
        log(f"measurement {m.name}: {t.seconds:.1f} s, peak {mem.rss_mib:.0f} MiB")
    return rows


def per_measurement(path: Path, art: Any, data: Any, settings: Any, device: str) -> dict[str, Any]:
    from loka.verify.loaded import load_model
    from loka.verify.measure import Measurements
    from loka.verify.verifier import Context

    load = lambda p, name: Measurements(load_model(p, name=name, device=device), data, settings)  # noqa: E731
    ctx = Context(load(path, "model"), load(art.retrain_dir, "retrain"), load(art.base_dir, "base"),
                  data, settings, {})
    return breakdown(ctx, device)


def run(args: Any, device: str) -> dict[str, Any]:
    from loka.verify import verifier
    from loka.verify.data import VerifyData
    from loka.verify.measure import VerifySettings
    from loka.world.build import load_world

    art = load_world(args.preset, progress=False)
    path, settings = model_dir(art, args.model), VerifySettings(threads=args.threads)
    with Timer() as t_data:
        data = VerifyData.from_world(art)
    rows = per_measurement(path, art, data, settings, device)
    log("full verification, cold")
    with PeakMemory(device) as mem, Timer() as t:
        report = verifier.verify(path, data, retrain=art.retrain_dir, base=art.base_dir,
                                 name=args.model, settings=settings, device=device)
        sync(device)
    return {"preset": args.preset, "model": args.model, "machine": machine(device),
            "verify_settings": settings.to_dict(), "data_seconds": t_data.seconds,
            "measurements": rows, "measurements_seconds": sum(r["seconds"] for r in rows.values()),
            "full": {"seconds": t.seconds, "report_verify_seconds": report.verify_seconds,
                     "forget_accuracy": report.forget_accuracy, "retain_accuracy": report.retain_accuracy,
                     **mem.to_dict()},
            "target_seconds": 60.0, "target_met": t.seconds <= 60.0}


def render(out: dict[str, Any]) -> None:
    rows = [(name, r["seconds"], r["peak_rss_mib"]) for name, r in out["measurements"].items()]
    rows.append(("all measurements", out["measurements_seconds"],
                 max(r["peak_rss_mib"] for r in out["measurements"].values())))
    f = out["full"]
    rows.append(("full verify (cold)", f["seconds"], f["peak_rss_mib"]))
    print_table(f"verifier on {out['preset']} ({out['model']}; target <= 60 s: "
                f"{'met' if out['target_met'] else 'NOT met'})",
                ("measurement", "seconds", "peak RSS MiB"), rows)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.verify", __doc__)
    p.add_argument("--model", default="base", help="base, retrain, or a checkpoint directory")
    args = p.parse_args(argv)
    device = setup(args)
    return finish(run(args, device), args.json, render)


if __name__ == "__main__":
    raise SystemExit(main())
