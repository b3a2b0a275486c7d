"""``kill -9`` at random points of ``world build``, ``unlearn`` and ``demo`` (issue 20).

Each run is a real ``python -m loka`` in its own session with a private ``LOKA_CACHE``; only
that process is killed, as ``kill -9 PID`` would. After each kill: no process of the run's
session is alive 5 s later, nothing incomplete lies under a final name (cache entries verify,
checkpoints load with a sealed manifest, report files parse), and the next run succeeds.
Each kill is pinned to a moment of the run whatever the machine's speed (seconds after a
build's training or an unlearn's save began: the writer's temporary directory appeared), and
a run that ended before its kill fails the test (it tested nothing). The delays are drawn from
``LOKA_KILL_SEED`` (default 0) so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from bench.hostile.cases_signals import session_processes, signal_run, temporary_exists
from bench.hostile.oracles import check_checkpoint_dir

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("LOKA_KILL_SEED", "0"))


def _delays(lo: float, hi: float, n: int, salt: int) -> list[float]:
    rng = random.Random(SEED * 1000 + salt)
    return sorted(round(rng.uniform(lo, hi), 3) for _ in range(n))


def _kill(argv: list[str], cache: Path, cwd: Path, delay: float, after=None) -> None:
    """SIGKILL the run ``delay`` s after ``after()`` holds (default: its start); fail if the run
    ended first (nothing tested) or any process of its session outlives it 5 s."""
    rc, err, problems, sent = signal_run(argv, {"LOKA_CACHE": str(cache)}, cwd, delay, signal.SIGKILL,
                                         after=after)
    assert sent, f"the run ended (exit {rc}) before the kill at {delay} s: shorten the delays"
    assert not problems, f"after kill -9 at {delay} s: {problems}"


def _finish(argv: list[str], cache: Path, cwd: Path) -> None:
    rc, err, problems, _ = signal_run(argv, {"LOKA_CACHE": str(cache)}, cwd, 900, signal.SIGKILL)
    assert rc == 0 and not problems, f"the next run did not recover (exit {rc}): {problems} {err[-2000:]}"


def _cache_entries_complete(cache: Path) -> None:
    from loka.world.cache import entry_problem

    for entry in (d for d in cache.glob("*/*") if d.is_dir() and not d.name.startswith(".")):
        assert entry_problem(entry) is None, f"{entry} is under its final name but {entry_problem(entry)}"


def _seed_world(cache: Path, tiny_world) -> None:
    """The tiny world's data and tokenizer (not its models), so a build starts training at once."""
    import shutil

    shutil.copytree(tiny_world.world_dir, cache / tiny_world.root.name / "world")


def test_kill_9_during_world_build(tiny_world, tmp_path):
    cache, argv = tmp_path / "cache", ["world", "build", "--preset", "tiny"]
    _seed_world(cache, tiny_world)
    entry = cache / tiny_world.root.name
    for delay in _delays(0, 3, 4, salt=1):  # seconds into training (base and retrain train at once)
        _kill(argv, cache, tmp_path, delay, after=temporary_exists(entry, "base"))
        _cache_entries_complete(cache)
    _finish(argv, cache, tmp_path)
    _cache_entries_complete(cache)
    assert not [p.name for p in cache.glob("*/.*.tmp-*")], "a killed build's temporary was never removed"
    assert {p.name for p in (cache / tiny_world.root.name).iterdir() if p.is_dir()} == {"world", "base", "retrain"}


def test_kill_9_during_unlearn(tiny_world, tmp_path):
    out = tmp_path / "ckpt"
    argv = ["unlearn", "--method", "gradient_ascent", "--preset", "tiny", "--set", "epochs=3",
            "--out", str(out)]
    for delay in _delays(0, 0.05, 5, salt=2):  # seconds into the save
        _kill(argv, Path(os.environ.get("LOKA_CACHE") or Path.home() / ".cache/loka"), tmp_path, delay,
              after=temporary_exists(tmp_path, "ckpt"))
        if out.exists():  # the save finished before the kill: it must be whole
            assert check_checkpoint_dir(out) is None, check_checkpoint_dir(out)
            import shutil

            shutil.rmtree(out)
    _finish(argv, Path(os.environ.get("LOKA_CACHE") or Path.home() / ".cache/loka"), tmp_path)
    assert check_checkpoint_dir(out) is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ckpt")] == [], "leftovers kept"


def test_kill_9_during_demo(tiny_world, tmp_path):
    out = tmp_path / "demo"
    cache = Path(os.environ.get("LOKA_CACHE") or Path.home() / ".cache/loka")
    argv = ["demo", "--preset", "tiny", "--methods", "base,gradient_ascent", "--set",
            "gradient_ascent.epochs=1", "--workers", "2", "--out", str(out)]
    for delay in _delays(4, 20, 3, salt=3):
        _kill(argv, cache, tmp_path, delay)
        for f in out.glob("*.json"):
            json.loads(f.read_text())  # a report file under its name is complete
    _finish(argv, cache, tmp_path)
    assert (out / "report.html").stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert not [m for m, e in results["methods"].items() if e.get("error")]


def test_the_session_check_sees_a_leftover_child(tmp_path):
    """The checker itself: a child that ignores its parent's death is found (and then killed)."""
    import subprocess
    import sys

    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    time.sleep(1.5)
    proc.kill()
    proc.wait()
    left = session_processes(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert len(left) == 1
