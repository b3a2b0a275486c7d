"""The on-disk cache of built worlds: data, tokenizer, `base` and `retrain` checkpoints.

Layout under ``$LOKA_CACHE`` (default ``~/.cache/loka``), keyed by the spec's hash::

    <preset>-<key>/world/     spec.json, tokenizer, facts/*.jsonl, passages/*.jsonl
    <preset>-<key>/base/      HF checkpoint (safetensors + tokenizer), trained on forget + retain
    <preset>-<key>/retrain/   HF checkpoint, same recipe and seed, retain only

Every entry is written into a temporary sibling and renamed into place when complete, and
carries ``loka_cache.json`` with the sha256 of each of its files: an entry that is partial or
whose files do not match is reported and rebuilt, never used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from loka import signals
from loka.errors import CacheError
from loka.io.atomic import usual_modes
from loka.io.checkpoint import file_sha256
from loka.io.outputs import cache_path

STAMP = "loka_cache.json"


def cache_root() -> Path:
    """``$LOKA_CACHE`` or ``~/.cache/loka``, created and checked writable."""
    root = cache_path()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as exc:
        raise CacheError(
            f"cache directory {root} is not writable ({exc.strerror or exc}); "
            "set LOKA_CACHE to a writable directory"
        ) from None
    return root


def _checksums(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): file_sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != STAMP
    }


def entry_problem(directory: Path) -> str | None:
    """Why a cache entry cannot be used (``None`` when it is complete and intact)."""
    stamp = directory / STAMP
    if not stamp.is_file():
        return "it has no completion stamp (a partial or interrupted write)"
    try:
        recorded = json.loads(stamp.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its completion stamp is unreadable"
    actual = _checksums(directory)
    if set(actual) != set(recorded):
        missing = sorted(set(recorded) - set(actual))
        return f"files are missing or extra ({', '.join(missing[:3]) or 'extra files'})"
    bad = [name for name, digest in recorded.items() if actual[name] != digest]
    if bad:
        return f"{', '.join(bad[:3])} does not match its recorded checksum"
    return None


def read_meta(directory: Path) -> dict:
    return json.loads((directory / STAMP).read_text())["meta"]


def ensure_entry(directory: Path, build: Callable[[Path], dict], what: str) -> dict:
    """Return the entry's metadata, building it (atomically) when missing, partial or corrupt.

    ``build(tmp_dir)`` writes the files into ``tmp_dir`` and returns JSON-able metadata. A lock
    file serialises builders, so two processes asking for the same entry build it once.
    """
    import fcntl

    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _ensure_locked(directory, build, what)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_locked(directory: Path, build: Callable[[Path], dict], what: str) -> dict:
    if directory.exists():
        problem = entry_problem(directory)
        if problem is None:
            return read_meta(directory)
        warnings.warn(f"cache entry {directory} ({what}) is unusable: {problem}; rebuilding it", stacklevel=2)
        shutil.rmtree(directory, ignore_errors=True)
    for stale in directory.parent.glob(f".{directory.name}.tmp-*"):  # a killed builder's: we
        shutil.rmtree(stale, ignore_errors=True)                      # hold the lock, none is live
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        meta = build(tmp)
        stamp = {"files": _checksums(tmp), "meta": meta}
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True))
        usual_modes(tmp)
        signals.check()  # an interrupt something swallowed: the entry must not become final
        os.replace(tmp, directory)
    except BaseException:  # also Ctrl-C: never leave a half-written entry behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta
