"""World presets: how many people and passages, the model's shape, and the training recipe."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from loka.errors import LokaError


@dataclass(frozen=True)
class ModelSpec:
    """A GPT-NeoX (Pythia's architecture) trained from scratch."""

    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 128
    vocab_size: int = 2048


@dataclass(frozen=True)
class TrainSpec:
    """AdamW with linear warm-up and cosine decay over packed rows of whole documents."""

    epochs: int = 60
    batch_rows: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    answer_weight: float = 1.0
    threads: int = 2


@dataclass(frozen=True)
class WorldSpec:
    """Everything that determines a world and its two models; its hash keys the cache."""

    preset: str
    seed: int = 0
    n_forget: int = 20
    n_retain_train: int = 160
    n_retain_eval: int = 60
    n_holdout: int = 60
    n_passages_forget: int = 8
    n_passages_retain: int = 16
    n_passages_holdout: int = 8
    passage_sentences: int = 3
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    @property
    def n_people(self) -> int:
        return self.n_forget + self.n_retain_train + self.n_retain_eval + self.n_holdout

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """Short content hash: same spec, same world, same models (the cache key)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


PRESETS: dict[str, WorldSpec] = {
    "default": WorldSpec(preset="default"),
    "tiny": WorldSpec(
        preset="tiny",
        n_forget=8,
        n_retain_train=24,
        n_retain_eval=12,
        n_holdout=16,
        n_passages_forget=2,
        n_passages_retain=4,
        n_passages_holdout=2,
        model=ModelSpec(n_layers=2, d_model=64, n_heads=4, d_mlp=256, n_ctx=128, vocab_size=1536),
        train=TrainSpec(epochs=100, batch_rows=4, lr=4e-3),
    ),
    # The default world's people and recipe on a deeper, wider model (about 5.8M parameters,
    # 4.4x the default's): for `bench.scale`. Untuned; training it takes about an hour on 2 CPU
    # cores, so the benchmark uses a random-init model of this shape unless it is cached.
    "large": WorldSpec(
        preset="large",
        model=ModelSpec(n_layers=6, d_model=256, n_heads=8, d_mlp=1024, n_ctx=128, vocab_size=2048),
    ),
}


def get_spec(preset: str, seed: int | None = None) -> WorldSpec:
    """The preset by name, optionally with another seed; unknown names are a one-line error."""
    if preset not in PRESETS:
        raise LokaError(f"unknown preset {preset!r}; choose one of: {', '.join(sorted(PRESETS))}")
    spec = PRESETS[preset]
    if seed is not None:
        from dataclasses import replace

        spec = replace(spec, seed=seed)
    return spec
