"""Child processes that never outlive the ``loka`` process that started them.

Worker processes (the world build's two trainers, the comparison's workers) call
`die_with_parent` first: a daemon thread watches the parent and exits the child at once when the
parent is gone — after ``kill -9`` too, which no cleanup handler sees — so no orphan keeps
training into a stale directory or holds the caller's pipes open. `terminate_pool` stops a pool's
workers when the parent itself is interrupted (Ctrl-C, SIGTERM) instead of waiting for them.

Example:
    >>> ProcessPoolExecutor(2, initializer=die_with_parent, initargs=(os.getpid(),))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any


def die_with_parent(parent: int | None = None, poll_seconds: float = 0.5) -> None:
    """In a child process: exit at once when the parent that started it is gone.

    ``parent``: the starting process's pid, passed by it (``os.getpid()`` in the initializer's
    arguments). A spawned child spends seconds importing before its initializer runs; a parent
    killed meanwhile has already been replaced by init as the child's parent by then, which
    ``os.getppid()`` alone would take for the real one.
    """
    parent = os.getppid() if parent is None else parent
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def terminate_pool(pool: Any) -> None:
    """Kill a ``ProcessPoolExecutor``'s workers now and drop its queued work."""
    for process in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(Exception):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
