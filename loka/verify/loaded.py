"""The model under test: its HF weights, tokenizer, optional refusal filter and manifest claims.

A model is given as a checkpoint directory or as an in-memory ``(hf_model, tokenizer)``. The
verifier never modifies it: attacks that train (relearning) work on a copy.

Example:
    >>> m = load_model(art.base_dir, name="base")                 # doctest: +SKIP
    >>> m.name, m.params_changed, m.warnings                      # doctest: +SKIP
    ('base', None, [])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attribution._common import input_device
from loka.errors import LokaError
from loka.io.checkpoint import REFUSAL_FILTER, file_sha256, non_finite_weights
from loka.io.manifest import manifest_value, read_manifest, seal_problem
from loka.io.refusal import RefusalFilter


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
        return input_device(self.model)


def _saved_filter(directory: Path, manifest: dict[str, Any] | None, warnings: list[str]) -> RefusalFilter | None:
    """The refusal filter saved beside the weights — only if the sealed manifest records its
    sha256: a filter file dropped in by hand would make a model that knows everything read as
    erased. An unrecorded one is ignored, with a warning."""
    path = directory / REFUSAL_FILTER
    if not path.is_file():
        return None
    sealed = manifest is not None and seal_problem(manifest) is None
    if not sealed or manifest.get("refusal_filter_sha256") != file_sha256(path):  # type: ignore[union-attr]
        warnings.append(f"{REFUSAL_FILTER} is ignored: the sealed manifest does not record it (or "
                        "records other bytes), so the model is measured without a refusal filter")
        return None
    try:
        return RefusalFilter.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise LokaError(f"{path} is not valid JSON; restore it or re-save the model") from None


def load_model(model: str | Path | tuple[Any, Any] | LoadedModel, *, name: str | None = None,
               refusal_filter: dict[str, Any] | None = None, device: str = "cpu",
               placement: Any = None) -> LoadedModel:
    """A checkpoint directory (manifest read) or ``(hf_model, tokenizer)``.

    A model with non-finite weights is refused (`LokaError`): its accuracies would read as
    perfect erasure. Manifest claims (seconds, changed parameters, divergence) are read only from
    a sealed manifest; a refusal filter only from its own file, when that manifest records it.
    """
    if isinstance(model, LoadedModel):
        return model
    refusal = RefusalFilter.from_dict(refusal_filter) if refusal_filter else None
    if isinstance(model, tuple):
        hf, tok = model
        loaded = LoadedModel(name or type(hf).__name__, hf, tok, refusal)
    else:
        from loka.io.models import load_hf

        hf, tok = load_hf(model, device, placement)
        directory = Path(model).expanduser()
        manifest = read_manifest(directory) if directory.is_dir() else None
        loaded = LoadedModel(name or directory.name, hf, tok, refusal, directory, manifest)
        if directory.is_dir() and refusal is None:
            loaded.refusal = _saved_filter(directory, manifest, loaded.warnings)
        if manifest is not None:
            from loka.io.provenance import check_provenance

            loaded.warnings += [f"provenance: {w}" for w in check_provenance(directory)]
            if seal_problem(manifest) is None:
                loaded.params_changed = manifest_value(manifest, "params_changed")
                loaded.seconds = manifest_value(manifest, "seconds")
                loaded.diverged = bool(manifest_value(manifest, "diverged") or False)
            else:
                loaded.warnings.append("the manifest's claims (seconds, changed parameters) are ignored")
    bad = non_finite_weights(loaded.model)
    if bad:
        raise LokaError(f"{loaded.name}: {bad:,} weights are NaN or infinite — a diverged model, "
                        "not an unlearned one; it cannot be verified")
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
    from attribution.data import prefix_ids, prefix_of

    if prefix_ids(tokenizer) != prefix_ids(expected):
        raise LokaError(f"the {what}'s tokenizer puts {prefix_of(tokenizer)!r} before every text, the data's "
                        f"{prefix_of(expected)!r} (attribution.data.set_prefix): its scores would not be comparable; "
                        "give both the same prefix")


def check_vocab_fits(loaded: LoadedModel) -> None:
    """The embedding must cover every token id the tokenizer can produce."""
    n_embed = loaded.model.get_input_embeddings().weight.shape[0]
    if len(loaded.tokenizer) > n_embed:
        raise LokaError(f"{loaded.name}: tokenizer has {len(loaded.tokenizer)} tokens but the "
                        f"model embeds only {n_embed}")
