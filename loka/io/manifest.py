"""The manifest beside every saved model: one name, one reader, one sealed writer.

``loka_manifest.json`` records what a checkpoint was made from and by what (source model and its
sha256, method, settings, cost, provenance). It is sealed: ``manifest_sha256`` is the sha256 of
the rest of the manifest in canonical JSON, so a claim edited by hand (``params_changed``,
``seconds``, ``method``) shows as a broken seal instead of being trusted. Manifests are untrusted
input: read with a size cap, and must be a JSON object.

Example:
    >>> write_manifest(directory, {"method": "loka-ft", "result": {...}})     # doctest: +SKIP
    >>> seal_problem(read_manifest(directory))                               # doctest: +SKIP
    None
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from loka.errors import LokaError
from loka.io.atomic import write_json

MANIFEST = "loka_manifest.json"
SEAL = "manifest_sha256"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def _digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != SEAL}
    blob = json.dumps(body, sort_keys=True, allow_nan=False, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its ``manifest_sha256`` (re)computed."""
    return {**{k: v for k, v in manifest.items() if k != SEAL}, SEAL: _digest(manifest)}


def seal_problem(manifest: dict[str, Any]) -> str | None:
    """Why the manifest's claims cannot be trusted as written by LOKA, or None when sealed."""
    recorded = manifest.get(SEAL)
    if recorded is None:
        return "the manifest has no seal (manifest_sha256): its claims were not checked"
    if recorded != _digest(manifest):
        return "the manifest was edited after saving (manifest_sha256 does not match its content)"
    return None


def read_manifest(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest as a dict, None when the directory has none; `LokaError` when malformed."""
    path = Path(model_dir) / MANIFEST
    if not path.exists():
        return None
    if not path.is_file():
        raise LokaError(f"{path} is not a regular file")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise LokaError(f"{path} is over {MAX_MANIFEST_BYTES} bytes: not a LOKA manifest")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise LokaError(f"{path} is not valid JSON ({type(exc).__name__}); re-save the model") from None
    if not isinstance(data, dict):
        raise LokaError(f"{path} is not a JSON object")
    return data


def require_manifest(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    manifest = read_manifest(model_dir)
    if manifest is None:
        raise LokaError(f"{model_dir} has no {MANIFEST}: its provenance is unknown")
    return manifest


def write_manifest(model_dir: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    """Seal and write the manifest atomically."""
    return write_json(Path(model_dir) / MANIFEST, seal(manifest))


def manifest_value(manifest: dict[str, Any], key: str) -> Any:
    """``key`` at the top of the manifest or in its ``result`` / ``metrics`` records."""
    for where in (manifest, manifest.get("result") or {}, manifest.get("metrics") or {}):
        if isinstance(where, dict) and where.get(key) is not None:
            return where[key]
    return None
