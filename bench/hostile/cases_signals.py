"""Groups 3 and 5 of the issue, and the environment: signals and limits, in fresh interpreters.

Each run is a real ``python -m loka`` in its own session; the bench signals only that process
(as ``kill`` would) and then checks: no process of its session left after 5 s, nothing
incomplete under a final name, SIGTERM / Ctrl-C exit 143 / 130 without a traceback, and that
the next run succeeds. The observations are the `Run`'s stdout (JSON); `no_problems` reads it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.hostile.harness import Case, Run
from bench.hostile.oracles import check_checkpoint_dir

ROOT = Path(__file__).resolve().parents[2]


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``, from /proc: the run and anything it
    started, however deep (a child reparented to init keeps its session)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(name))
    return out


def spawn(argv: list[str], env: dict[str, str], cwd: Path, limit_bytes: int | None = None) -> subprocess.Popen:
    def limits() -> None:
        if limit_bytes is not None:  # a full disk, as the writer sees it: EFBIG, not a signal
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "loka", *argv], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=limits)


def signal_run(argv: list[str], env: dict[str, str], cwd: Path, delay: float, sig: int,
               limit_bytes: int | None = None, after: Callable[[], bool] | None = None,
               ) -> tuple[int | None, str, list[str], bool]:
    """Start ``loka argv``, send ``sig`` to it alone ``delay`` s after ``after()`` first holds
    (default: after the start), unless it finished first; returns (exit code, stderr, problems:
    processes of its session alive 5 s later, whether the signal reached the running process).

    ``after`` pins the signal to a moment of the run (a save's temporary directory appearing)
    whatever the machine's speed; a fixed delay from the start lands anywhere, or after the end.
    """
    proc = spawn(argv, env, cwd, limit_bytes)
    if after is not None:
        deadline = time.monotonic() + 900
        while proc.poll() is None and not after() and time.monotonic() < deadline:
            time.sleep(0.002)
    sent = False
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        sent = proc.poll() is None
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=5 if sig == signal.SIGKILL else 120)
    except subprocess.TimeoutExpired:  # pipes held open by a child that outlived the run
        err = ""
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
    deadline, problems = time.monotonic() + 5, []
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = session_processes(proc.pid)
    if left:
        problems.append(f"{len(left)} process(es) of the killed run still alive after 5 s")
        for pid in left:  # ours: started by this run
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        err = err or ""
    return proc.returncode, err or "", problems, sent


def temporary_exists(directory: Path, name: str) -> Callable[[], bool]:
    """Whether a *new* temporary sibling of ``directory/name`` exists (this run's save has begun).

    Made before the run starts: a leftover of an earlier kill -9 is there from the first moment
    (the writer removes it only when it gets to its own save), and would let the signal land on
    the run's imports instead of its save.
    """
    def temporaries() -> set[str]:
        return {p.name for p in directory.iterdir() if p.name.startswith(f".{name}.tmp-")} if directory.exists() else set()

    before = temporaries()
    return lambda: bool(temporaries() - before)


def _missed(sent: bool, sig: int, what: str) -> list[str]:
    return [] if sent else [f"the run ended before {signal.Signals(sig).name} {what}: the case tested nothing"]


def _result(problems: list[str], stderr: str = "", notes: str = "") -> Run:
    return Run(0, json.dumps({"problems": problems, "notes": notes}), stderr, 0.0)


def no_problems(run: Run, ctx: Any) -> str | None:
    problems = json.loads(run.stdout)["problems"]
    return "; ".join(problems) if problems else None


def _private_cache(ctx: Any) -> Path:
    """A cache holding the tiny world's data and base model but not its retrain model, so a
    build trains (one model) from the first second."""
    cache = ctx.ws / "private-cache"
    if not cache.exists():
        entry = cache / ctx.p("entry").name
        for part in ("world", "base"):
            shutil.copytree(ctx.p("entry") / part, entry / part)
    return cache


def _entries_complete(cache: Path) -> list[str]:
    from loka.world.cache import entry_problem

    return [f"cache entry {d} is under its final name but {entry_problem(d)}"
            for d in sorted(cache.glob("*/*"))  # dot-names are leftovers, never read
            if d.is_dir() and not d.name.startswith(".") and entry_problem(d)]


def _expected_exit(sig: int, rc: int | None, stderr: str) -> list[str]:
    want = {int(signal.SIGTERM): 143, int(signal.SIGINT): 130}.get(sig)
    out = [] if want is None or rc == want else [f"exit {rc} after {signal.Signals(sig).name}, not {want}"]
    return out + (["a traceback on stderr"] if "Traceback" in stderr and sig != signal.SIGKILL else [])


def world_build(delay: float, sig: int) -> Any:
    def runner(case: Case, ctx: Any) -> Run:
        cache = _private_cache(ctx)
        entry = cache / ctx.p("entry").name
        rc, err, problems, sent = signal_run(["world", "build", "--preset", "tiny"], {"LOKA_CACHE": str(cache)},
                                             ctx.case, delay, sig, after=temporary_exists(entry, "retrain"))
        problems += _missed(sent, sig, f"{delay} s into training") + _expected_exit(sig, rc, err)
        problems += _entries_complete(cache)
        if rc == 0:
            shutil.rmtree(cache / ctx.p("entry").name / "retrain")  # it finished: train again next
        return _result(problems, err if sig != signal.SIGKILL else "")
    return runner


def world_recovers(case: Case, ctx: Any) -> Run:
    cache = _private_cache(ctx)
    rc, err, problems, _ = signal_run(["world", "build", "--preset", "tiny"], {"LOKA_CACHE": str(cache)},
                                      ctx.case, 1800, signal.SIGKILL)
    problems += ([] if rc == 0 else [f"the next build failed (exit {rc}): {err[-300:]}"])
    problems += _entries_complete(cache)
    leftovers = [p.name for p in cache.glob("*/.*") if ".tmp-" in p.name]
    return _result(problems + ([f"leftovers: {leftovers}"] if leftovers else []), err)


_UNLEARN = ["unlearn", "--method", "gradient_ascent", "--model", "{M}", "--forget", "{forget}",
            "--retain", "{retain}", "--set", "epochs=3", "--out", "{case}/out"]


def unlearn(delay: float, sig: int, then_rerun: bool = False, in_save: bool = True) -> Any:
    """Signal ``unlearn`` ``delay`` s after its save began (``in_save``) or after its start."""
    def runner(case: Case, ctx: Any) -> Run:
        argv = [ctx.fmt(a) for a in _UNLEARN]
        after = temporary_exists(ctx.case, "out") if in_save else None
        rc, err, problems, sent = signal_run(argv, {}, ctx.case, delay, sig, after=after)
        problems += _missed(sent, sig, f"{delay} s into its {'save' if in_save else 'run'}")
        problems += _expected_exit(sig, rc, err)
        out = ctx.case / "out"
        if out.exists() and (why := check_checkpoint_dir(out)):
            problems.append(f"incomplete checkpoint under its final name: {why}")
        if sig != signal.SIGKILL and any(".tmp-" in p.name for p in ctx.case.iterdir()):
            problems.append("a temporary directory left behind by a run that could clean up")
        if then_rerun:
            shutil.rmtree(out, ignore_errors=True)
            rc2, err2, more, _ = signal_run(argv, {}, ctx.case, 600, signal.SIGKILL)
            problems += more + ([] if rc2 == 0 else [f"the rerun failed: {err2[-300:]}"])
            problems += [f"leftover {p.name}" for p in ctx.case.iterdir() if ".tmp-" in p.name]
        return _result(problems, err if sig != signal.SIGKILL else "")
    return runner


def demo(delay: float, written: str) -> Any:
    """SIGKILL ``demo`` ``delay`` s after its report directory holds ``written`` (the moment it
    lands on: the methods' runs after ``ranking.json``, the report after ``results.json``), then
    run it again into the same directory. A fixed delay from the start landed after the end of a
    demo on a cached tiny world (~25 s) and tested nothing."""
    argv = ["demo", "--preset", "tiny", "--methods", "base,gradient_ascent", "--set",
            "gradient_ascent.epochs=1", "--workers", "2", "--out", "{case}/demo"]

    def runner(case: Case, ctx: Any) -> Run:
        full = [ctx.fmt(a) for a in argv]
        marker = ctx.case / "demo" / written
        rc, err, problems, sent = signal_run(full, {}, ctx.case, delay, signal.SIGKILL, after=marker.exists)
        problems += _missed(sent, signal.SIGKILL, f"{delay} s after {written} was written")
        for f in (ctx.case / "demo").glob("*.json"):
            try:
                json.loads(f.read_text())
            except ValueError:
                problems.append(f"{f.name} is incomplete under its final name")
        rc2, err2, more, _ = signal_run(full, {}, ctx.case, 600, signal.SIGKILL)
        problems += more + ([] if rc2 == 0 else [f"the next demo failed (exit {rc2}): {err2.strip()[-300:]}"])
        return _result(problems)
    return runner


def full_disk(argv: list[str], limit: int, env: dict[str, str] | None = None) -> Any:
    def runner(case: Case, ctx: Any) -> Run:
        extra = {"LOKA_CACHE": str(ctx.case / "cache")} if env is None else env
        proc = spawn([ctx.fmt(a) for a in argv], extra, ctx.case, limit)
        out, err = proc.communicate(timeout=600)
        return Run(proc.returncode, out, err, 0.0)
    return runner


def _plugins(case: Case, ctx: Any) -> Run:
    proc = spawn(["unlearn", "--method", "gradient_ascent", "--out", str(ctx.case / "o")],
                 {"LOKA_PLUGINS": "no.such.module"}, ctx.case)
    out, err = proc.communicate(timeout=300)
    return Run(proc.returncode, out, err, 0.0)


def cases() -> list[Case]:
    g3, g5 = "3 kill world build", "5 kill during save"
    out = [Case(g3, f"{signal.Signals(s).name} world build {d} s into training", ("world", "build"),
                runner=world_build(d, s), expect="ok", oracle=no_problems)
           for d, s in ((0.5, signal.SIGKILL), (2, signal.SIGTERM), (2, signal.SIGINT), (4, signal.SIGKILL))]
    out.append(Case(g3, "world build after the kills recovers", ("world", "build"), runner=world_recovers,
                    expect="ok", oracle=no_problems))
    out += [Case(g5, f"SIGKILL unlearn {d} s into its save", tuple(_UNLEARN), runner=unlearn(d, signal.SIGKILL, d > 0.01),
                 expect="ok", oracle=no_problems) for d in (0.0, 0.005, 0.02, 0.05)]
    out += [Case(g5, f"{signal.Signals(s).name} unlearn {d} s into its {'save' if save else 'run'}", tuple(_UNLEARN),
                 runner=unlearn(d, s, in_save=save), expect="ok", oracle=no_problems)
            for s in (signal.SIGTERM, signal.SIGINT) for d, save in ((0.01, True), (4.0, False))]
    out += [Case(g3, f"SIGKILL demo {d} s after its {f} is written, then rerun", ("demo",), runner=demo(d, f),
                 expect="ok", oracle=no_problems) for d, f in ((2.0, "ranking.json"), (0.0, "results.json"))]
    out += [
        Case("4 full disk", "unlearn saving onto a full disk", tuple(_UNLEARN), runner=full_disk(_UNLEARN, 300_000, {}),
             says="space|too large|write"),
        Case("4 full disk", "world build onto a full disk", ("world", "build", "--preset", "tiny"),
             runner=full_disk(["world", "build", "--preset", "tiny"], 50_000), says="space|too large|write"),
        Case("9 new", "LOKA_PLUGINS names a missing module", ("unlearn",), runner=_plugins, says="LOKA_PLUGINS"),
        Case("9 new", "LOKA_CACHE under a regular file", ("world", "info", "--preset", "tiny"),
             env={"LOKA_CACHE": "{case}/afile/cache"},
             setup=lambda ctx: (ctx.case / "afile").write_text("x"), says="not writable"),
        Case("9 new", "a hub name offline", ("attribute", "--model", "EleutherAI/pythia-14m", "--forget",
             "{forget}", "--retain", "{retain}", "--out", "{out}.json"), env={"HF_HUB_OFFLINE": "1"},
             says="hub"),
    ]
    return out
