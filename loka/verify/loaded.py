"""The model under test: its HF weights, tokenizer, optional refusal filter and provenance.

A model is given as a checkpoint directory or as an in-memory ``(hf_model, tokenizer)``. The
verifier never modifies it: attacks that train (relearning) work on a copy.

Example:
    >>> m = load_model(art.base_dir, name="base")                 # doctest: +SKIP
    >>> m.name, m.params_changed, m.warnings                      # doctest: +SKIP
    ('base', None, [])
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loka.errors import LokaError
from loka.verify.refusal import RefusalFilter

MANIFEST = "loka_manifest.json"  # written by `loka.engine.save`


@dataclass
class LoadedModel:
    """An HF causal LM ready to be measured; ``refusal`` wraps its generations, not its weights."""

    name: str
    model: Any
    tokenizer: Any
    refusal: RefusalFilter | None = None
    source: Path | None = None
    manifest: dict[str, Any] | None = None
    seconds: float | None = None
    params_changed: int | None = None
    diverged: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LokaError(f"{path}: unreadable manifest ({exc})") from None


def _manifest_value(manifest: dict[str, Any], key: str) -> Any:
    """``key`` at the top of the manifest or in its ``metrics`` / ``result`` records."""
    for where in (manifest, manifest.get("metrics") or {}, manifest.get("result") or {}):
        if isinstance(where, dict) and where.get(key) is not None:
            return where[key]
    return None


def provenance_warnings(manifest: dict[str, Any]) -> list[str]:
    """Re-hash the manifest's source checkpoint if it is here; a mismatch is a warning, not a failure."""
    source, expected = manifest.get("source_model"), manifest.get("source_sha256")
    if not source or not expected or not Path(source).is_dir():
        return []
    from loka.engine.save import sha256_of_checkpoint

    try:
        actual = sha256_of_checkpoint(source)
    except LokaError as exc:
        return [f"could not re-hash the source model {source}: {exc}"]
    if actual != expected:
        return [f"the source model {source} changed since this edit was made "
                f"(sha256 {actual[:12]} != manifest {expected[:12]})"]
    return []


def load_model(model: str | Path | tuple[Any, Any] | LoadedModel, *, name: str | None = None,
               refusal_filter: dict[str, Any] | None = None, device: str = "cpu") -> LoadedModel:
    """A checkpoint directory (manifest read, provenance checked) or ``(hf_model, tokenizer)``."""
    if isinstance(model, LoadedModel):
        return model
    refusal = RefusalFilter.from_dict(refusal_filter) if refusal_filter else None
    if isinstance(model, tuple):
        hf, tok = model
        return LoadedModel(name or type(hf).__name__, hf, tok, refusal)
    from loka.models import load_hf

    hf, tok = load_hf(model, device)
    directory = Path(model).expanduser()
    manifest = _read_manifest(directory) if directory.is_dir() else None
    loaded = LoadedModel(name or directory.name, hf, tok, refusal, directory, manifest)
    if manifest is not None:
        loaded.params_changed = _manifest_value(manifest, "params_changed")
        loaded.seconds = _manifest_value(manifest, "seconds")
        loaded.diverged = bool(_manifest_value(manifest, "diverged") or False)
        if refusal is None and _manifest_value(manifest, "refusal_filter"):
            loaded.refusal = RefusalFilter.from_dict(_manifest_value(manifest, "refusal_filter"))
        loaded.warnings.extend(provenance_warnings(manifest))
        for w in loaded.warnings:
            warnings.warn(w, stacklevel=2)
    return loaded


def check_tokenizer(tokenizer: Any, expected: Any, what: str = "model") -> None:
    """Refuse a tokenizer whose vocabulary (token -> id) or special ids differ from ``expected``."""
    if expected is None:
        return
    if tokenizer.get_vocab() != expected.get_vocab():
        raise LokaError(
            f"the {what}'s tokenizer differs from the data's ({len(tokenizer)} vs {len(expected)} "
            "tokens, or different ids): its scores would not be comparable; use a model trained "
            "with the world's tokenizer"
        )
    for attr in ("bos_token_id", "eos_token_id"):
        if getattr(tokenizer, attr) != getattr(expected, attr):
            raise LokaError(f"the {what}'s tokenizer has another {attr} than the data's")


def check_vocab_fits(loaded: LoadedModel) -> None:
    """The embedding must cover every token id the tokenizer can produce."""
    n_embed = loaded.model.get_input_embeddings().weight.shape[0]
    if len(loaded.tokenizer) > n_embed:
        raise LokaError(f"{loaded.name}: tokenizer has {len(loaded.tokenizer)} tokens but the "
                        f"model embeds only {n_embed}")
