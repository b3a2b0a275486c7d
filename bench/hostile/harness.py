"""One hostile case: what it runs, how it is run, and what its outcome is.

A `Case` is a ``loka`` command line (with ``{placeholders}`` for the workspace's files), what
behaviour is right for it (``error``: refuse with one line; ``ok``: succeed and pass the
``oracle``; ``either``), and optionally files to prepare (``setup``). It runs in this process
through `loka.cli.main` with stdout and stderr captured at the file-descriptor level (an
exception escaping ``main`` is a traceback), or in a fresh interpreter when it needs one
(``runner``: signals, environment read at import).

Outcomes, each case exactly one (the first that applies):

- ``data_lost``: a file that existed before the case (the source model, the cache, another
  output) changed or vanished (`bench.hostile.ledger`);
- ``traceback``: "Traceback" on stderr, an exception escaping ``main``, or an exit code other
  than 0 and 2;
- ``silent_wrong``: exit 0 where a refusal was due, the oracle rejecting the result, a valid
  input refused, or an error line that names the wrong cause;
- ``clean_error``: exit 2 and exactly one ``loka...: error:`` line;
- ``correct``: exit 0 and the oracle content.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

OUTCOMES = ("clean_error", "correct", "traceback", "silent_wrong", "data_lost")
ERROR_LINE = re.compile(r"^loka(?: [\w-]+)*: error: ")


@dataclass
class Run:
    """What one command did."""

    rc: int
    stdout: str
    stderr: str
    seconds: float
    exception: str | None = None  # an exception that escaped `loka.cli.main`


Oracle = Callable[[Run, "Any"], "str | None"]  # (run, context) -> why the result is wrong, or None


@dataclass(frozen=True)
class Case:
    """A hostile input x command, and what a right answer looks like."""

    group: str  # the group ("1 non-finite" ... "8 smaller") or "9 new"
    name: str  # unique, short: what is hostile about it
    argv: tuple[str, ...]  # ``loka`` arguments; ``{name}`` placeholders are workspace paths
    expect: Literal["error", "ok", "either"] = "error"
    oracle: Oracle | None = None  # checks an exit-0 result
    says: str | None = None  # a regex the error line must match (the right cause named)
    setup: Callable[[Any], None] | None = None  # prepares case-local files (gets the context)
    env: Mapping[str, str] = field(default_factory=dict)
    runner: Callable[[Case, Any], Run] | None = None  # default: in this process
    may_change: tuple[str, ...] = ()  # protected paths this case may rightly replace
    max_seconds: float | None = None  # a refusal must come this fast (before any training)
    quick: bool = False  # replayed by the default test suite


@contextlib.contextmanager
def _captured() -> Iterator[dict[str, str]]:
    """Capture fds 1 and 2 (C-level writes, handlers bound early) and sys.stdout/err."""
    got: dict[str, str] = {}
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved_fd = os.dup(1), os.dup(2)
    saved_py = sys.stdout, sys.stderr
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), encoding="utf-8", errors="replace")
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), encoding="utf-8", errors="replace")
        try:
            yield got
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
                    stream.close()
            sys.stdout, sys.stderr = saved_py
            os.dup2(saved_fd[0], 1)
            os.dup2(saved_fd[1], 2)
            for fd in saved_fd:
                os.close(fd)
            for name, f in (("stdout", out), ("stderr", err)):
                f.seek(0)
                got[name] = f.read().decode("utf-8", errors="replace")


@contextlib.contextmanager
def _environment(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    saved, here = dict(os.environ), os.getcwd()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved)


class Hung(Exception):
    """A case ran past its time limit (a blocking read, an endless loop)."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hung("no answer within the case's time limit")


def run_in_process(argv: list[str], env: Mapping[str, str], cwd: Path, timeout: int = 600) -> Run:
    """``loka.cli.main(argv)`` with its output captured; an escaping exception is recorded."""
    import signal
    import traceback

    from loka.cli import main

    exception, rc = None, 0
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    with _environment(env, cwd), _captured() as got:
        try:
            rc = int(main(argv) or 0)
        except SystemExit as exc:  # argparse usage errors; SIGTERM turned into an exit
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if rc not in (0, 2):
                exception = f"SystemExit({exc.code!r})"
        except BaseException as exc:  # noqa: BLE001  the bug this benchmark hunts
            rc, exception = 1, f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    gc.collect()
    return Run(rc, got["stdout"], got["stderr"], time.perf_counter() - t0, exception)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ERROR_LINE.match(line.strip())]


def classify(case: Case, run: Run, lost: list[str], context: Any) -> tuple[str, str]:
    """``(outcome, detail)`` for one finished case (see the module docstring)."""
    if lost:
        return "data_lost", f"changed or removed: {', '.join(lost[:3])}"
    if run.exception or "Traceback" in run.stderr or run.rc not in (0, 2):
        tail = run.exception or (run.stderr.strip().splitlines() or ["?"])[-1]
        return "traceback", f"exit {run.rc}: {tail[:200]}"
    if run.rc == 2:
        lines = error_lines(run.stderr)
        if len(lines) != 1:
            return "silent_wrong", f"exit 2 with {len(lines)} error lines: {run.stderr.strip()[-200:]}"
        if case.expect == "ok":
            return "silent_wrong", f"a valid input refused: {lines[0][:200]}"
        if case.says and not re.search(case.says, lines[0]):
            return "silent_wrong", f"the error names another cause (want /{case.says}/): {lines[0][:200]}"
        if case.max_seconds is not None and run.seconds > case.max_seconds:
            return "silent_wrong", f"refused only after {run.seconds:.0f} s of work: {lines[0][:160]}"
        return "clean_error", lines[0][:200]
    if case.expect == "error":
        return "silent_wrong", "exit 0 where a refusal was due"
    why = case.oracle(run, context) if case.oracle else None
    if why:
        return "silent_wrong", why[:300]
    return "correct", "exit 0, result checked" if case.oracle else "exit 0"
