"""Leftovers of an interrupted checkpoint write: recognise them, restore or remove them.

`save_checkpoint` builds a checkpoint in ``.<name>.tmp-<host>-<pid>-XXXX`` beside the target and,
when replacing an existing one, first moves that aside to ``.<name>.old-<host>-<pid>-XXXX/ckpt``.
A writer killed (SIGKILL, power loss) cannot clean up after itself, so the next save to the same
target calls `recover` first: leftovers of writers on this host that are no longer running are
removed — and if the kill fell between the two renames, so that the target is missing while
its previous checkpoint sits in an ``.old-`` directory, that checkpoint is moved back first.
Nothing reads dot-directories in the meantime, so a leftover is never mistaken for a model.

Example:
    >>> prefix = temp_prefix(Path("out/ft"), "tmp")   # '.ft.tmp-myhost-4242-'
    >>> recover(Path("out/ft"))                       # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", os.uname().nodename) or "host"


def temp_prefix(target: Path, kind: str) -> str:
    """The prefix of a ``kind`` (``tmp`` or ``old``) sibling made by this process."""
    return f".{target.name}.{kind}-{_host()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale_leftovers(target: Path) -> list[tuple[str, Path]]:
    """``(kind, path)`` of this target's leftovers from dead writers on this host."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-{re.escape(_host())}-(\d+)-[^-]+$")
    if not target.parent.is_dir():
        return []
    out = []
    for p in sorted(target.parent.iterdir()):
        m = pattern.match(p.name)
        if m and p.is_dir() and not p.is_symlink() and not _alive(int(m.group(2))):
            out.append((m.group(1), p))
    return out


def recover(target: Path) -> list[str]:
    """Restore a checkpoint a killed writer left moved aside, remove dead writers' leftovers."""
    actions = []
    for kind, path in stale_leftovers(target):
        if kind == "old" and (path / "ckpt").is_dir() and not target.exists():
            os.replace(path / "ckpt", target)
            actions.append(f"restored the previous checkpoint from {path.name}")
        shutil.rmtree(path, ignore_errors=True)
        actions.append(f"removed {path.name}")
    return actions
