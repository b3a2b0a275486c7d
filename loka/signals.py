"""Interrupts that cannot be lost: Ctrl-C and SIGTERM always end a ``loka`` run with 130 / 143.

Python turns a signal into an exception in the main thread at the next bytecode. Raised at the
wrong moment — inside a library's bare ``except:`` during an import, a ``__del__``, a callback —
that exception is swallowed, and the run goes on to finish and exit 0 as if nobody had asked it
to stop (the world build did, intermittently, in bench.hostile). So the handler also *records*
the signal: `check` re-raises a recorded one, and the places that make a result final (a cache
entry's or an output's rename, the world build's progress loop) call it, and the command line
turns a run that returned normally after a signal into the signal's exit code.

Example:
    >>> with installed():           # main(), before anything slow is imported   # doctest: +SKIP
    ...     check()                 # before a rename that makes a result final   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_RECEIVED: list[int] = []


def _handler(signum: int, frame: object) -> None:
    _RECEIVED.append(signum)
    raise_for(signum)


def raise_for(signum: int) -> None:
    """Unwind like Ctrl-C, so every temporary file and child process is cleaned up on the way."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Record and raise on SIGINT and SIGTERM inside the block; the handlers found on entry are
    restored and the record cleared on the way out (``main()`` called in-process, e.g. by tests).
    Main thread only: Python's rule for signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in old:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _RECEIVED.clear()


def received() -> int | None:
    """The first signal this process received (and has not cleared), or None."""
    return _RECEIVED[0] if _RECEIVED else None


def check() -> None:
    """Raise again for a signal received earlier whose exception something swallowed."""
    if _RECEIVED:
        raise_for(_RECEIVED[0])
