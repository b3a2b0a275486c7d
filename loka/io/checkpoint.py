"""The one save path for models: a new, complete, self-checked HF checkpoint, or nothing.

The checkpoint — safetensors weights, config, tokenizer, the refusal filter where one belongs,
and the sealed manifest with the method and provenance — is built in a temporary sibling and
renamed into place only after it passes its checks: every weight finite (and, given the
tokenizer, the outputs on a short text: finite weights can still overflow), the manifest naming
a method and carrying provenance (seed, data files, the saved weights' own sha256). The target is
refused up front if it is, contains or lies inside a model directory or LOKA's cache
(`loka.io.outputs`); a checkpoint is never written over an existing one.

Example:
    >>> save_checkpoint(model, "out/forgot-mira", method="loka-ft", source="ckpt/base",
    ...                 tokenizer=tok, provenance=provenance_section(seed=0))   # doctest: +SKIP
    PosixPath('out/forgot-mira')
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loka.engine.adapters import hf_model, hf_state_dict
from loka.errors import CheckpointWriteError, LokaError
from loka.io.atomic import staged_dir, write_json
from loka.io.manifest import MANIFEST, seal
from loka.io.outputs import check_output
from loka.memory import non_finite_entries

REFUSAL_FILTER = "loka_refusal_filter.json"
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


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def non_finite_weights(model: Any) -> int:
    """How many parameter entries are NaN or infinite (0 for a healthy model); parameters
    offloaded to the meta device (a dispatched model) are not in memory and are not counted."""
    return sum(non_finite_entries(p) for p in hf_model(model).parameters() if p.device.type != "meta")


def _outputs_finite(model: Any, tokenizer: Any) -> bool:
    from loka.evaluate import FINITE_CHECK_TEXTS, outputs_finite

    return outputs_finite(model, tokenizer, FINITE_CHECK_TEXTS)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def manifest_record(model_class: str, method: str, source: str | None, plans: Sequence[Mapping[str, Any]],
                    result: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """A manifest's content before provenance and the seal (the source is hashed now)."""
    local = source is not None and Path(source).is_dir()
    provenances = [p.get("provenance") or {} for p in plans]
    return {
        "loka_manifest": 2,
        "method": method,
        "source_model": source,
        "source_sha256": sha256_of_checkpoint(source) if local and source is not None else None,
        "plans": [dict(p) for p in plans],
        "ranking_methods": sorted({p["ranking_method"] for p in provenances if p.get("ranking_method")}),
        "data_hashes": sorted({p["data_hash"] for p in provenances if p.get("data_hash")}),
        "result": dict(result or {}),
        "metrics": dict(metrics or {}),
        "model_class": model_class,
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def save_checkpoint(model: Any, out_dir: str | os.PathLike[str], *, method: str,
                    source: str | os.PathLike[str] | None = None, tokenizer: Any = None,
                    plans: Sequence[Mapping[str, Any]] = (), result: Mapping[str, Any] | None = None,
                    metrics: Mapping[str, Any] | None = None,
                    provenance: Mapping[str, Any] | None = None,
                    refusal_filter: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (a HF model or a bridge over one) as the new checkpoint ``out_dir``.

    ``plans`` are `AblationPlan.to_dict()` values; ``result`` the method's summary;
    ``provenance`` the `loka.io.provenance.provenance_section` (the saved weights' sha256 is
    added here). Raises `CheckpointWriteError` (nothing written) when a check fails.
    """
    plain = hf_model(model)
    source_str = str(source) if source is not None else getattr(plain, "name_or_path", None) or None
    try:
        target = check_output(out_dir, kind="dir", sources=[source_str], what="checkpoint directory")
    except LokaError as exc:
        raise CheckpointWriteError(str(exc)) from None
    bad = non_finite_weights(plain)
    if bad:
        raise CheckpointWriteError(f"the model has {bad:,} non-finite weights (NaN or infinity); "
                                   "it is not saved — the edit diverged")
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is not None and not _outputs_finite(plain, tokenizer):
        raise CheckpointWriteError("the model's weights are finite but its outputs are not (NaN or "
                                   "infinity: they overflow); it is not saved — the edit diverged")
    if method == "output_suppression" and refusal_filter is None:
        raise CheckpointWriteError("an output_suppression checkpoint needs its refusal filter")
    manifest = manifest_record(type(plain).__name__, method, source_str, plans, result, metrics)
    try:
        with staged_dir(target) as tmp:
            # Wrapped by a bridge, the model's own state dict has the bridge's aliases; save the
            # plain HF one so that from_pretrained loads it.
            plain.save_pretrained(tmp, state_dict=hf_state_dict(plain), safe_serialization=True)  # type: ignore[operator]
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            if refusal_filter is not None:
                manifest["refusal_filter_sha256"] = file_sha256(write_json(tmp / REFUSAL_FILTER,
                                                                           dict(refusal_filter)))
            manifest["provenance"] = {**dict(provenance or {}), "weights_sha256": sha256_of_checkpoint(tmp)}
            write_json(tmp / MANIFEST, seal(manifest))
    except OSError as e:
        raise CheckpointWriteError(f"cannot write a checkpoint at {target}: {e.strerror or e}") from None
    return target
