"""Save an edited model as a new HF checkpoint with a manifest — atomically, never over its source.

>>> save_checkpoint(bridge, "out/forgot-mira", plans=[plan], source="ckpt/base")  # doctest: +SKIP
PosixPath('out/forgot-mira')
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loka.engine.adapters import hf_model, hf_state_dict
from loka.engine.errors import CheckpointWriteError
from loka.engine.plan import AblationPlan
from loka.engine.stale import recover, temp_prefix

MANIFEST = "loka_manifest.json"
_VERSIONED = ("loka", "torch", "transformers", "transformer-lens", "safetensors", "tokenizers")


def sha256_of_checkpoint(directory: str | os.PathLike[str]) -> str:
    """SHA-256 over a checkpoint's ``*.safetensors`` files (names and bytes, in name order)."""
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise CheckpointWriteError(f"no .safetensors files in {directory} to hash")
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _check_target(target: Path, source: Path | None, overwrite: bool) -> None:
    if source is not None and source.exists():
        src = source.resolve()
        if target == src or target.is_relative_to(src):
            raise CheckpointWriteError(f"refusing to write into the source model directory {src}; "
                                       "choose a new output directory")
        if overwrite and src.is_relative_to(target):
            raise CheckpointWriteError(f"refusing to overwrite {target}: it contains the source "
                                       f"model {src}")
    if target.exists() and not target.is_dir():
        raise CheckpointWriteError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise CheckpointWriteError(f"{target} exists and is not empty; pass overwrite=True "
                                   "to replace it")


def build_manifest(bridge: Any, plans: Sequence[AblationPlan], source: str | None,
             metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The audit record written next to the weights."""
    local = source is not None and Path(source).is_dir()
    return {
        "loka_manifest": 1,
        "source_model": source,
        "source_sha256": sha256_of_checkpoint(source) if local else None,
        "plans": [p.to_dict() for p in plans],
        "ranking_methods": sorted({p.provenance.ranking_method for p in plans
                                   if p.provenance.ranking_method}),
        "data_hashes": sorted({p.provenance.data_hash for p in plans if p.provenance.data_hash}),
        "metrics": metrics or {},
        "model_class": type(hf_model(bridge)).__name__,
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def save_checkpoint(
    bridge: Any,
    out_dir: str | os.PathLike[str],
    *,
    plans: Sequence[AblationPlan] = (),
    source: str | os.PathLike[str] | None = None,
    metrics: dict[str, Any] | None = None,
    tokenizer: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write ``bridge``'s (edited) HF model to the new directory ``out_dir``.

    Writes safetensors weights, config, tokenizer and ``loka_manifest.json``. ``source`` (default:
    the path the model was loaded from) is never written to or inside, even with ``overwrite``.
    The checkpoint is built in a temporary sibling directory and moved into place only when
    complete, so ``out_dir`` never holds half a checkpoint.
    """
    model = hf_model(bridge)
    source_str = str(source) if source is not None else getattr(model, "name_or_path", None) or None
    target = Path(out_dir).expanduser().resolve()
    recover(target)  # a writer killed earlier: restore what it moved aside, drop its leftovers
    _check_target(target, Path(source_str) if source_str else None, overwrite)
    tokenizer = tokenizer if tokenizer is not None else getattr(bridge, "tokenizer", None)
    info = build_manifest(bridge, plans, source_str, metrics)  # hashes the source before writing
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target, "tmp"), dir=target.parent))
    except OSError as e:
        raise CheckpointWriteError(f"cannot write a checkpoint at {target}: {e.strerror or e}") from None
    try:
        # Wrapped by a bridge, the model's own state dict has the bridge's aliases; save the
        # plain HF one so that from_pretrained loads it.
        model.save_pretrained(tmp, state_dict=hf_state_dict(model), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(json.dumps(info, indent=2, allow_nan=False) + "\n")
        _move_into_place(tmp, target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise CheckpointWriteError(f"cannot write a checkpoint at {target}: {e}") from e
        raise
    return target


def _move_into_place(tmp: Path, target: Path) -> None:
    if not target.exists() or not any(target.iterdir()):
        with contextlib.suppress(FileNotFoundError):
            target.rmdir()  # an empty directory is replaced as if absent
        os.replace(tmp, target)
        return
    # os.replace cannot replace a non-empty directory: move the old one aside first, so a crash
    # leaves either the old checkpoint or the new one under its name, never a mixture.
    old = Path(tempfile.mkdtemp(prefix=temp_prefix(target, "old"), dir=target.parent))
    os.replace(target, old / "ckpt")
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old / "ckpt", target)
        raise
    finally:
        if not (old / "ckpt").exists() or target.exists():
            shutil.rmtree(old, ignore_errors=True)
