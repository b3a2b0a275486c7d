"""The hostile-input benchmark: every command fed what a careless or hostile user would feed it.

    python -m bench.hostile [--json] [--quick] [--only REGEX]

Replays the cases of issue 20 (its eight groups) and new ones on the tiny world, each classified
as clean error / correct / traceback / silent wrong / data lost (`bench.hostile.harness`),
with every protected file (the cache, the source model, earlier outputs) hashed before and
after each case (`bench.hostile.ledger`). The case tables are one module per group of inputs:

    cases_outputs   --out targets x output options (group 2)
    cases_models    damaged and unsupported checkpoints x model options (groups 4, 7)
    cases_data      hostile JSONL records x data options (groups 4, 8)
    cases_finite    settings that overflow, NaN models (group 1)
    cases_provenance  tampered checkpoints, manifests and data files (group 6)
    cases_options   settings, seeds, method lists, rankings, devices (groups 4, 8, new)
    cases_signals   SIGTERM / SIGKILL / Ctrl-C during builds, saves and demos (groups 3, 5)

Example:
    >>> from bench.hostile import all_cases, replay
    >>> out = replay([c for c in all_cases() if c.quick])        # doctest: +SKIP
    >>> out["summary"]["traceback"], out["summary"]["silent_wrong"], out["summary"]["data_lost"]
    (0, 0, 0)
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.hostile.harness import OUTCOMES, Case, classify, run_in_process

GROUP_MODULES = ("cases_outputs", "cases_models", "cases_data", "cases_finite", "cases_provenance",
                 "cases_options", "cases_signals")


def all_cases() -> list[Case]:
    """Every case, group module by group module; names are unique."""
    out: list[Case] = []
    for name in GROUP_MODULES:
        out += importlib.import_module(f"bench.hostile.{name}").cases()
    dupes = [n for n, k in Counter((c.group, c.name) for c in out).items() if k > 1]
    if dupes:
        raise ValueError(f"duplicate case names: {dupes[:5]}")
    return out


def _log(progress: bool, text: str) -> None:
    if progress:
        from bench._common import log

        log(text)


def _restore(ctx: Any, pristine: Path) -> None:
    """Put the fixtures and the world's cache entry back after a case destroyed some of them."""
    for live, saved in ((ctx.p("fx"), pristine / "fx"), (ctx.p("entry"), pristine / "entry")):
        shutil.rmtree(live, ignore_errors=True)
        shutil.copytree(saved, live, symlinks=True)


def run_case(case: Case, ctx: Any, ledger: Any) -> tuple[Any, list[str]]:
    """Run one case in ``ctx.case``; returns the `Run` and the protected files it lost."""
    if case.setup:
        case.setup(ctx)
    ledger.roots[-1] = ctx.case
    ledger.scan()
    env = {k: ctx.fmt(v) for k, v in case.env.items()}
    if case.runner is not None:
        run = case.runner(case, ctx)
    else:
        run = run_in_process([ctx.fmt(a) for a in case.argv], env, ctx.case)
    allowed = [Path(ctx.fmt(p)) for p in case.may_change] + [ctx.p("cache") / "verify-reference"]
    return run, ledger.lost(allowed)


def replay(cases: Sequence[Case], workdir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run ``cases`` on the tiny world in a fresh workspace; counts and one row per case."""
    from bench.hostile import fixtures
    from bench.hostile.ledger import Ledger
    from loka.world.build import load_world

    t0 = time.perf_counter()
    art = load_world("tiny", progress=progress)
    ws = Path(tempfile.mkdtemp(prefix="loka-hostile-", dir=workdir)).resolve()
    _log(progress, f"workspace {ws}: building fixtures")
    ctx = fixtures.build(ws, art)
    pristine = ws / "pristine"
    shutil.copytree(ctx.p("fx"), pristine / "fx", symlinks=True)
    shutil.copytree(art.root, pristine / "entry", symlinks=True)
    ledger = Ledger([ctx.p("cache"), ctx.p("fx"), ws / "cases"])  # the last: the case dir
    rows = []
    try:
        for i, case in enumerate(cases):
            ctx.case = ws / "cases" / f"{i:03d}"
            ctx.case.mkdir(parents=True)
            run, lost = run_case(case, ctx, ledger)
            try:
                outcome, detail = classify(case, run, lost, ctx)
            except Exception as exc:  # an oracle that cannot even read the result
                outcome, detail = "silent_wrong", f"the result cannot be checked: {type(exc).__name__}: {exc}"
            rows.append({"group": case.group, "name": case.name, "argv": [ctx.fmt(a) for a in case.argv],
                         "outcome": outcome, "detail": detail, "exit": run.rc,
                         "seconds": round(run.seconds, 2)})
            _log(progress, f"[{i + 1}/{len(cases)}] {outcome:12s} {case.group} | {case.name} "
                           f"({run.seconds:.1f}s){'' if outcome in ('clean_error', 'correct') else ': ' + detail}")
            if lost:
                _restore(ctx, pristine)
            shutil.rmtree(ctx.case, ignore_errors=True)
            ledger.forget(ctx.case)
            ledger.scan()
    finally:
        shutil.rmtree(ws, ignore_errors=True)
    counts = Counter(r["outcome"] for r in rows)
    by_group: dict[str, Counter] = {}
    for r in rows:
        by_group.setdefault(r["group"], Counter())[r["outcome"]] += 1
    return {"summary": {"tried": len(rows), **{o: counts.get(o, 0) for o in OUTCOMES}},
            "by_group": {g: {"tried": sum(c.values()), **{o: c.get(o, 0) for o in OUTCOMES}}
                         for g, c in sorted(by_group.items())},
            "cases": rows, "seconds": round(time.perf_counter() - t0, 1)}
