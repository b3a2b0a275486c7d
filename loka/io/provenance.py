"""Provenance of a saved model: what it was made from, and whether those inputs are unchanged.

`provenance_section` is what `save_checkpoint` records beside the weights: the seed, the data
*files* with their sha256, the task's own hash, the world (preset, seed, spec key); the
checkpoint adds the sha256 of the saved weights. `check_provenance` re-hashes whatever still
exists — source model, data files, weights, refusal filter — checks the manifest's seal, and
returns one warning per problem; `loka verify` reports them in its JSON and can make them fatal.

Manifests are untrusted input: their paths are only ever *read* (regular files only — never a
device or a FIFO), never written.

Example:
    >>> section = provenance_section(seed=0, data_files=["forget.jsonl"], world=art)   # doctest: +SKIP
    >>> check_provenance("out/ft")                                                    # doctest: +SKIP
    []
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loka.errors import LokaError
from loka.io.checkpoint import REFUSAL_FILTER, file_sha256, sha256_of_checkpoint
from loka.io.manifest import read_manifest, seal_problem


def provenance_section(*, seed: int | None = None, data_files: Sequence[str | os.PathLike[str]] = (),
                       world: Any = None, task_sha256: str | None = None) -> dict[str, Any]:
    """The inputs of an edit, hashed now (before the model is saved)."""
    section: dict[str, Any] = {
        "seed": seed,
        "task_sha256": task_sha256,
        "data_files": [{"path": str(Path(f).expanduser().resolve()), "sha256": file_sha256(f),
                        "bytes": Path(f).stat().st_size} for f in data_files],
    }
    if world is not None:
        section["world"] = {"preset": world.spec.preset, "seed": world.spec.seed,
                            "key": world.spec.key(), "root": str(world.root)}
    return section


def _rehash(label: str, path: Any, recorded: Any, hasher: Callable[[Path], str]) -> str | None:
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
    """Warnings (empty when all is well): the seal, the source checkpoint, data files, weights."""
    try:
        manifest = read_manifest(model_dir)
    except LokaError as exc:
        return [str(exc)]
    if manifest is None:
        return [f"{model_dir} has no loka_manifest.json: its provenance is unknown"]
    warnings: list[str] = []
    problem = seal_problem(manifest)
    warnings += [problem] if problem else []
    source, recorded = manifest.get("source_model"), manifest.get("source_sha256")
    if recorded is not None:
        w = _rehash("source model", source, recorded,
                    lambda p: sha256_of_checkpoint(p) if p.is_dir() else _hash_regular(p))
        warnings += [w] if w else []
    section = manifest.get("provenance")
    if not isinstance(section, dict):
        return warnings + ["the manifest has no provenance section (data files, seed): "
                           "re-save the model with this version of LOKA"]
    own = section.get("weights_sha256")
    if own is not None:
        w = _rehash("saved weights in", str(model_dir), own, sha256_of_checkpoint)
        warnings += [w.replace("has changed since the model was made", "were modified after saving")] if w else []
    refusal = manifest.get("refusal_filter_sha256")
    if refusal is not None or (Path(model_dir) / REFUSAL_FILTER).exists():
        w = _rehash("refusal filter", str(Path(model_dir) / REFUSAL_FILTER), refusal, _hash_regular)
        warnings += [w] if w else []
    files = section.get("data_files", [])
    for entry in files if isinstance(files, list) else [None]:
        entry = entry if isinstance(entry, dict) else {}
        w = _rehash("data file", entry.get("path"), entry.get("sha256"), _hash_regular)
        warnings += [w] if w else []
    return warnings
