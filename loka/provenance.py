"""Provenance of a saved model: what it was made from, and whether those inputs are unchanged.

`save_checkpoint` already writes ``loka_manifest.json`` with the source model and its sha256,
plans, ranking methods, token-data hashes, metrics and library versions, and
`UnlearnResult.save` adds the method, its settings and ranking summary. `add_provenance` adds
what an audit still needs — the seed, the world (preset, spec key), the data *files* with their
sha256, and the sha256 of the saved weights themselves. `check_provenance` re-hashes whatever
still exists and returns one warning per mismatch; `loka verify` prints them.

Manifests are untrusted input: read with a size cap, and their paths are only ever *read*
(regular files only — never a device or a FIFO), never written.

Example:
    >>> path = result.save("out/ft", source=art.base_dir)                           # doctest: +SKIP
    >>> add_provenance(path, seed=0, data_files=[art.facts_file("forget")], world=art)  # doctest: +SKIP
    >>> check_provenance(path)                                                      # doctest: +SKIP
    []
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loka.errors import LokaError

MANIFEST = "loka_manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def file_sha256(path: str | os.PathLike[str]) -> str:
    from loka.world.cache import file_sha256 as sha

    return sha(Path(path))


def read_manifest(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest as a dict; `LokaError` when absent, oversized or not a JSON object."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise LokaError(f"{model_dir} has no {MANIFEST}: its provenance is unknown")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise LokaError(f"{path} is over {MAX_MANIFEST_BYTES} bytes: not a LOKA manifest")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise LokaError(f"{path} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise LokaError(f"{path} is not a JSON object")
    return data


def add_provenance(model_dir: str | os.PathLike[str], *, seed: int | None = None,
                   data_files: Sequence[str | os.PathLike[str]] = (), world: Any = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add a ``provenance`` section to the manifest (rewritten atomically); return it."""
    from loka.engine.save import sha256_of_checkpoint
    from loka.methods.base import _write_json

    manifest = read_manifest(model_dir)
    section: dict[str, Any] = {
        "seed": seed,
        "weights_sha256": sha256_of_checkpoint(model_dir),
        "data_files": [{"path": str(Path(f).expanduser().resolve()), "sha256": file_sha256(f),
                        "bytes": Path(f).stat().st_size} for f in data_files],
    }
    if world is not None:
        section["world"] = {"preset": world.spec.preset, "seed": world.spec.seed,
                            "key": world.spec.key(), "root": str(world.root)}
    section.update(extra or {})
    manifest["provenance"] = section
    _write_json(Path(model_dir) / MANIFEST, manifest)
    return section


def _rehash(label: str, path: Any, recorded: Any, hasher: Any) -> str | None:
    if not isinstance(path, str) or not isinstance(recorded, str):
        return f"{label}: the manifest's entry is malformed"
    p = Path(path).expanduser()
    if not p.exists():
        return f"{label} {p} no longer exists; its sha256 cannot be re-checked"
    try:
        actual = hasher(p)
    except (OSError, LokaError) as exc:
        return f"{label} {p} cannot be hashed ({exc})"
    if actual != recorded:
        return f"{label} {p} has changed since the model was made (sha256 {actual[:12]}… != recorded {recorded[:12]}…)"
    return None


def _hash_regular(path: Path) -> str:
    if not path.is_file():  # never read a device, a FIFO or a directory named by a manifest
        raise LokaError("not a regular file")
    return file_sha256(path)


def check_provenance(model_dir: str | os.PathLike[str]) -> list[str]:
    """Warnings (empty when all is well): re-hash the source checkpoint, data files and weights."""
    from loka.engine.save import sha256_of_checkpoint

    try:
        manifest = read_manifest(model_dir)
    except LokaError as exc:
        return [str(exc)]
    warnings: list[str] = []
    source, recorded = manifest.get("source_model"), manifest.get("source_sha256")
    if recorded is not None:
        w = _rehash("source model", source, recorded,
                    lambda p: sha256_of_checkpoint(p) if p.is_dir() else _hash_regular(p))
        warnings += [w] if w else []
    section = manifest.get("provenance")
    if not isinstance(section, dict):
        return warnings + ["the manifest has no provenance section (data files, seed); "
                           "add one with loka.provenance.add_provenance"]
    own = section.get("weights_sha256")
    if own is not None:
        w = _rehash("saved weights in", str(model_dir), own, sha256_of_checkpoint)
        warnings += [w.replace("has changed since the model was made", "were modified after saving")] if w else []
    files = section.get("data_files", [])
    for entry in files if isinstance(files, list) else [None]:
        entry = entry if isinstance(entry, dict) else {}
        w = _rehash("data file", entry.get("path"), entry.get("sha256"), _hash_regular)
        warnings += [w] if w else []
    return warnings
