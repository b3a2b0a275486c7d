"""Every protected file's sha256 before and after each case: nothing may change or vanish.

The ledger walks its roots (the cache, the workspace) and remembers each file's stat and
sha256; a file is re-hashed only when its stat changed, so a check after each case costs a walk.
A file that vanished, or whose bytes differ, is *lost* — unless the case may rightly replace it.

Example:
    >>> ledger = Ledger([cache, workspace]); ledger.scan()          # doctest: +SKIP
    >>> run_case(...); ledger.lost(allowed=[out_dir])                # doctest: +SKIP
    []
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


class Ledger:
    """sha256 of every regular file under ``roots`` (symlinks and dot-leftovers included)."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(r) for r in roots]
        self.files: dict[Path, tuple[tuple[int, int, int] | None, str | None]] = {}

    def _walk(self) -> Iterable[Path]:
        for root in self.roots:
            for here, _dirs, files in os.walk(root):
                for name in files:
                    p = Path(here) / name
                    if p.is_file() and not p.is_symlink():
                        yield p

    def scan(self) -> None:
        """Record every file now present (hashing new or changed ones)."""
        seen = {}
        for p in self._walk():
            st = _stat(p)
            old = self.files.get(p)
            seen[p] = old if old and old[0] == st else (st, _sha256(p))
        self.files = seen

    def lost(self, allowed: Sequence[Path] = ()) -> list[str]:
        """Files recorded by the last `scan` that vanished or changed since, outside ``allowed``;
        then records the present state."""
        allowed = [Path(a) for a in allowed]
        out = []
        for p, (st, digest) in self.files.items():
            if any(p == a or a in p.parents for a in allowed):
                continue
            now = _stat(p)
            if now is None:
                out.append(f"{p} (removed)")
            elif now != st and _sha256(p) != digest:
                out.append(f"{p} (changed)")
        self.scan()
        return out

    def forget(self, under: Path) -> None:
        """Drop files under ``under`` (the bench removed a finished case's directory)."""
        self.files = {p: v for p, v in self.files.items() if p != under and under not in p.parents}
