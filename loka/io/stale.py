"""Leftovers of an interrupted write: recognise them, restore or remove them.

`loka.io.atomic` builds every file and directory in ``.<name>.tmp-<host>-<pid>-XXXX`` beside
the target and, when replacing a directory, first moves it aside to
``.<name>.old-<host>-<pid>-XXXX/entry``. A writer killed (SIGKILL, power loss) cannot clean up
after itself, so the next write to the same target calls `recover` first: leftovers of writers
on this host that are no longer running are removed — and if the kill fell between the two
renames, so that the target is missing while its previous version sits in an ``.old-``
directory, that version is moved back first. Nothing reads dot-names in the meantime, so a
leftover is never mistaken for an artifact.

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


def stale_leftovers(directory: Path) -> list[tuple[str, Path, Path]]:
    """``(kind, leftover, its target)`` of dead writers on this host, anywhere in ``directory``."""
    pattern = re.compile(rf"^\.(.+)\.(tmp|old)-{re.escape(_host())}-(\d+)-[^-]+$")
    if not directory.is_dir():
        return []
    out = []
    for p in sorted(directory.iterdir()):
        m = pattern.match(p.name)
        if m and not p.is_symlink() and not _alive(int(m.group(3))):
            out.append((m.group(2), p, directory / m.group(1)))
    return out


def recover(target: Path) -> list[str]:
    """Restore what killed writers left moved aside and remove their leftovers — every dead
    writer's in ``target``'s directory, not only this target's (nothing waits for a rerun)."""
    actions = []
    for kind, path, its_target in stale_leftovers(target.parent):
        if kind == "old" and (path / "entry").exists() and not its_target.exists():
            os.replace(path / "entry", its_target)
            actions.append(f"restored the previous version from {path.name}")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        actions.append(f"removed {path.name}")
    return actions
