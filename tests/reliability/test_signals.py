"""Ctrl-C and SIGTERM always stop a run with 130 / 143 and leave nothing under a final name —
also when they land during the seconds of imports before any work, and when a library's bare
``except:`` swallows the exception Python raised for them (bench.hostile's intermittent
"SIGTERM world build ... exit 0, not 143")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loka import signals
from loka.io.atomic import staged_dir
from loka.world.cache import ensure_entry, entry_problem

ROOT = Path(__file__).resolve().parents[2]


def _swallowed(sig: int) -> None:
    """Deliver ``sig`` to this process where a library's bare ``except`` eats its exception."""
    try:
        os.kill(os.getpid(), sig)
        time.sleep(0.5)  # the handler runs in here
    except BaseException:  # noqa: BLE001 - what the library does
        pass


def _write(tmp: Path) -> dict:
    (tmp / "weights").write_text("complete")
    return {}


@pytest.mark.parametrize("sig, exc", [(signal.SIGTERM, SystemExit), (signal.SIGINT, KeyboardInterrupt)])
def test_a_swallowed_signal_still_keeps_a_cache_entry_and_an_output_from_becoming_final(tmp_path, sig, exc):
    with signals.installed():
        _swallowed(sig)
        assert signals.received() == sig
        with pytest.raises(exc):
            ensure_entry(tmp_path / "entry", _write, "test entry")
        with pytest.raises(exc), staged_dir(tmp_path / "out") as tmp:
            _write(tmp)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".entry.lock"]  # no entry, output or temporary
    assert signals.received() is None  # cleared on the way out: the next in-process run is clean


def test_main_does_not_exit_0_after_a_swallowed_sigterm(monkeypatch):
    import loka.cli as cli

    def swallowing_run(func, args) -> int:
        _swallowed(signal.SIGTERM)
        return 0

    monkeypatch.setattr(cli, "run", swallowing_run)
    with pytest.raises(SystemExit) as info:
        cli.main(["world", "info", "--preset", "tiny"])
    assert info.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is not signals._handler  # handlers restored


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (Python installs none by default)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@pytest.mark.parametrize("sig, want", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_imports_is_a_clean_exit(tmp_path, sig, want):
    """Just after main() begins, ``loka`` spends seconds importing torch and transformers (the
    subcommands' modules): Ctrl-C there gave a KeyboardInterrupt traceback and exit -2. (Before
    main() — the interpreter's own start-up, ~0.1 s — Python's default handling applies.)"""
    env = {**os.environ, "LOKA_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "loka", "world", "build", "--preset", "tiny"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _catches_sigterm(proc.pid) and time.monotonic() < deadline:  # main() has begun: the
        time.sleep(0.005)                                                  # imports are next
    time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == want, err[-2000:]
    assert "Traceback" not in err
    final = [d for d in (tmp_path / "cache").glob("*/*") if not d.name.startswith(".")]
    assert [entry_problem(d) for d in final] == [None] * len(final)  # whole, or not under its name
