"""World presets: how many people and passages, the model's shape, the training recipe, and (for
the planted worlds) where the forget set's knowledge is put."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace

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
class PlantSpec:
    """The planted set: MLP neurons that alone learn the forget data while `base` trains.

    Gradient routing at the parameter level (Cloud et al. 2024, arXiv 2410.04332; SGTM,
    2512.05648): forget rows train only the planted neurons' own slices (input row and bias of
    ``dense_h_to_4h``, output column of ``dense_4h_to_h``); retain rows train everything else
    and, by default, not the planted slices (``retain_trains``: "reads" lets them train the
    planted input side too, "all" every planted slice; "gate": every retain row trains the rest of
    the model with the plant off — the retrain model's data — and all but ``retain_dropout``
    of them run again with the plant on, training its input side only, so the shared weights
    never adapt to the planted neurons while those learn to stay quiet on retain text). ``neurons[i]`` are the indices planted
    in ``layers[i]``, drawn with ``seed`` (`PlantSpec.draw`) and written out so
    spec.json is the answer key. ``retain_dropout`` of the retain rows run with the planted
    neurons zeroed, so retain knowledge does not come to depend on them; the first
    ``retain_only_frac`` of the steps see retain rows only (the shared machinery learns the
    templates first); each forget document is drawn ``forget_repeat`` times an epoch.
    ``forget_keys``: "input" lets forget rows also train the input-embedding rows of the tokens
    only forget documents contain (names, and answers no retain person has; parameters the
    retain data never trains), "both" their output rows too (which the retain rows then leave
    alone): without them the planted neurons must read forget names from their random initial
    embeddings. "routed" lets the forget rows train the input rows too, but only through the
    planted neurons: every other module reads the embeddings detached, so the trained key rows
    drive the plant and no other path (with "input", the keys alone carried forget answers past
    an ablated plant on one seed in three); ``key_lr_scale`` scales those rows' learning rate.
    ``plant_epochs``: more epochs after the schedule that train the planted slices and keys alone
    (`loka.world.routing.train_routed`). ``forget_loss``: "all" tokens of the forget documents,
    or only "answers" (a forget person's attribute values).

    Example:
        >>> plant = PlantSpec.draw(layers=(0, 1), per_layer=2, d_mlp=8, seed=0)
        >>> plant.size, len(plant.neurons[0])
        (4, 2)
    """

    layers: tuple[int, ...]
    per_layer: int
    seed: int
    neurons: tuple[tuple[int, ...], ...]
    retain_dropout: float = 0.25
    retain_trains: str = "none"
    retain_only_frac: float = 0.15
    forget_repeat: int = 3
    planted_lr_scale: float = 1.0
    forget_keys: str = "none"
    plant_epochs: int = 0
    forget_loss: str = "all"
    key_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        if len(self.neurons) != len(self.layers) or len(set(self.layers)) != len(self.layers):
            raise ValueError("a plant names each layer once, with one index list per layer")
        for idx in self.neurons:
            if len(idx) != self.per_layer or len(set(idx)) != len(idx) or min(idx, default=0) < 0:
                raise ValueError(f"each planted layer needs {self.per_layer} distinct indices >= 0")
        if not 0 <= self.retain_dropout < 1 or not 0 <= self.retain_only_frac < 1:
            raise ValueError("retain_dropout and retain_only_frac must lie in [0, 1)")
        if self.retain_trains not in ("none", "reads", "gate", "all"):
            raise ValueError("retain_trains must be none, reads, gate or all")
        if self.forget_keys not in ("none", "input", "both", "routed"):
            raise ValueError("forget_keys must be none, input, both or routed")
        if self.plant_epochs < 0 or not self.key_lr_scale > 0:
            raise ValueError("plant_epochs must be >= 0 and key_lr_scale > 0")
        if self.forget_loss not in ("all", "answers"):
            raise ValueError("forget_loss must be all or answers")
        if self.forget_repeat < 1:
            raise ValueError("forget_repeat must be >= 1")

    @classmethod
    def draw(cls, layers: tuple[int, ...], per_layer: int, d_mlp: int, seed: int,
             **options: float | int | str) -> PlantSpec:
        """``per_layer`` indices in each of ``layers``, drawn without replacement with ``seed``."""
        rng = random.Random(f"loka-plant-{seed}")
        neurons = tuple(tuple(sorted(rng.sample(range(d_mlp), per_layer))) for _ in layers)
        return cls(tuple(layers), per_layer, seed, neurons, **options)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return self.per_layer * len(self.layers)

    def by_layer(self) -> dict[int, tuple[int, ...]]:
        return dict(zip(self.layers, self.neurons, strict=True))


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
    plant: PlantSpec | None = None  # None: `base` trains plainly (every world but the planted)

    def __post_init__(self) -> None:
        if self.plant is not None:
            bad = [(layer, i) for layer, idx in self.plant.by_layer().items() for i in idx
                   if layer >= self.model.n_layers or i >= self.model.d_mlp]
            if bad:
                raise ValueError(f"planted neurons outside the model: {bad[:3]}")

    @property
    def n_people(self) -> int:
        return self.n_forget + self.n_retain_train + self.n_retain_eval + self.n_holdout

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.plant is None:  # unplanted worlds keep the keys (and cache entries) they had
            del data["plant"]
        return data

    def key(self) -> str:
        """Short content hash: same spec, same world, same models (the cache key)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


_TINY_MODEL = ModelSpec(n_layers=2, d_model=64, n_heads=4, d_mlp=256, n_ctx=128, vocab_size=1536)

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
        model=_TINY_MODEL,
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
# The tiny world's people, data and recipe, with the forget set's knowledge routed into 64
# seeded MLP neurons (32 per layer, 12.5%): the answer key that attribution methods are graded
# against (`bench.localization`). The retrain model is trained exactly as the tiny world's is.
# Tiny, so that both models build in about two minutes on 2 CPU cores. Recipe (notes of issue
# 18; chosen on world seeds 0-2, worst seed first): "gate" keeps retain accuracy (plant-on
# retain rows teach the planted neurons to stay quiet); the forget-only tokens' input rows learn
# only through the plant ("routed": with plain input keys they alone carried forget answers past
# an ablated plant on seed 2); 50 plant epochs with the shared weights frozen and the keys at
# 10x the plant's learning rate win back part of the forget knowledge that routing the keys
# costs. The price: the base knows about 40% of its forget facts (0.35 on the worst seed).
PRESETS["planted"] = replace(
    PRESETS["tiny"], preset="planted",
    plant=PlantSpec.draw(layers=(0, 1), per_layer=32, d_mlp=_TINY_MODEL.d_mlp, seed=0,
                         retain_trains="gate", retain_dropout=0.0, planted_lr_scale=3.0,
                         forget_keys="routed", forget_repeat=8, plant_epochs=50, key_lr_scale=10.0))


def get_spec(preset: str, seed: int | None = None) -> WorldSpec:
    """The preset by name, optionally with another seed; unknown names are a one-line error."""
    if preset not in PRESETS:
        raise LokaError(f"unknown preset {preset!r}; choose one of: {', '.join(sorted(PRESETS))}")
    spec = PRESETS[preset]
    if seed is not None:
        from dataclasses import replace

        spec = replace(spec, seed=seed)
    return spec
