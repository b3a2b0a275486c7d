"""Build (or load from cache) a world: its data files, tokenizer, `base` and `retrain` models.

>>> art = load_world("tiny")           # trains on the first call, then reads the cache
>>> art.base_dir, art.retrain_dir, art.info()["base"]["forget_accuracy"]   # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from loka.evaluate import first_token_accuracy
from loka.world.cache import cache_root, ensure_entry, read_meta
from loka.world.generator import PersonSplit, World, generate_world
from loka.world.spec import WorldSpec, get_spec
from loka.world.tokenizer import train_tokenizer
from loka.world.train import train_model

FACT_SPLITS: tuple[PersonSplit, ...] = ("forget", "retain_train", "retain_eval", "holdout")
MODELS = ("base", "retrain")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def check_first_tokens(world: World, tokenizer: PreTrainedTokenizerFast) -> None:
    """Values of one attribute must start with distinct tokens, or first-token accuracy lies."""
    from loka.world.vocab import ATTRIBUTE_VALUES

    for attribute, values in ATTRIBUTE_VALUES.items():
        firsts = {tokenizer(" " + v, add_special_tokens=False)["input_ids"][0] for v in values}
        if len(firsts) != len(values):
            raise RuntimeError(f"{attribute}: values share first tokens; raise the vocabulary size")


def _build_world_dir(world: World, tmp: Path) -> dict:
    spec = world.spec
    tokenizer = train_tokenizer(world.corpus(), spec.model.vocab_size)
    check_first_tokens(world, tokenizer)
    tokenizer.save_pretrained(tmp / "tokenizer")
    (tmp / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True))
    for split in FACT_SPLITS:
        for kind, suffix in (("train", ""), ("qa", "_qa"), ("novel", "_novel")):
            _write_jsonl(tmp / "facts" / f"{split}{suffix}.jsonl",
                         [f.to_json() for f in world.facts(split, kind)])
    for split in ("forget", "retain", "holdout"):
        _write_jsonl(tmp / "passages" / f"{split}.jsonl",
                     [{"text": p.text} for p in world.passages_in(split)])  # type: ignore[arg-type]
    return {"preset": spec.preset, "key": spec.key(), "people": spec.n_people}


def model_accuracies(model: Any, tokenizer: Any, world: World) -> dict[str, float]:
    """First-answer-token accuracy on each split (training templates) and held-out templates."""
    acc = {
        "forget_accuracy": first_token_accuracy(model, tokenizer, world.facts("forget")),
        "retain_accuracy": first_token_accuracy(model, tokenizer, world.facts("retain_eval")),
        "retain_train_accuracy": first_token_accuracy(model, tokenizer, world.facts("retain_train")),
        "holdout_accuracy": first_token_accuracy(model, tokenizer, world.facts("holdout")),
        "heldout_template_forget_accuracy": first_token_accuracy(model, tokenizer, world.facts("forget", "qa")),
        "heldout_template_retain_accuracy": first_token_accuracy(model, tokenizer, world.facts("retain_eval", "qa")),
        "novel_template_forget_accuracy": first_token_accuracy(model, tokenizer, world.facts("forget", "novel")),
    }
    return {k: round(v, 4) for k, v in acc.items()}


def _build_model_dir(world: World, which: str, tokenizer_dir: Path, progress: bool, tmp: Path) -> dict:
    from tqdm.auto import tqdm

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    bar = tqdm(total=None, desc=f"training {which}", unit="step", disable=not progress, leave=False)

    def on_step(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")

    try:
        result = train_model(world, tokenizer, which == "base", world.spec.model, world.spec.train, on_step)
    finally:
        bar.close()
    result.model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    return {
        "model": which,
        "train_seconds": round(result.seconds, 2),
        "steps": result.steps,
        "final_loss": round(result.final_loss, 4),
        "tokens_seen": result.tokens_seen,
        "params": sum(p.numel() for p in result.model.parameters()),
        "accuracy": model_accuracies(result.model, tokenizer, world),
    }


@dataclass(frozen=True)
class WorldArtifacts:
    """A built world on disk: paths to its data, tokenizer and both models."""

    spec: WorldSpec
    root: Path

    @cached_property
    def world(self) -> World:
        return generate_world(self.spec)

    @property
    def world_dir(self) -> Path:
        return self.root / "world"

    @property
    def base_dir(self) -> Path:
        return self.root / "base"

    @property
    def retrain_dir(self) -> Path:
        return self.root / "retrain"

    def facts_file(self, split: PersonSplit, kind: str = "train") -> Path:
        suffix = {"train": "", "qa": "_qa", "novel": "_novel"}[kind]
        return self.world_dir / "facts" / f"{split}{suffix}.jsonl"

    def passages_file(self, split: str) -> Path:
        return self.world_dir / "passages" / f"{split}.jsonl"

    def tokenizer(self) -> PreTrainedTokenizerFast:
        return AutoTokenizer.from_pretrained(self.world_dir / "tokenizer")

    def info(self) -> dict:
        """What ``loka world info --json`` prints."""
        spec = self.spec
        base, retrain = read_meta(self.base_dir), read_meta(self.retrain_dir)
        return {
            "preset": spec.preset,
            "seed": spec.seed,
            "key": spec.key(),
            "cache_dir": str(self.root),
            "people": spec.n_people,
            "forget_people": spec.n_forget,
            "retain_people": spec.n_retain_train + spec.n_retain_eval,
            "retain_train_people": spec.n_retain_train,
            "retain_eval_people": spec.n_retain_eval,
            "holdout_people": spec.n_holdout,
            "attributes": 4,
            "passages": spec.n_passages_forget + spec.n_passages_retain + spec.n_passages_holdout,
            "forget_passages": spec.n_passages_forget,
            "params": base["params"],
            "model": spec.model.__dict__,
            "base_train_seconds": base["train_seconds"],
            "retrain_train_seconds": retrain["train_seconds"],
            "base": base["accuracy"],
            "retrain": retrain["accuracy"],
        }


def load_world(preset: str = "default", seed: int | None = None, progress: bool = True) -> WorldArtifacts:
    """Build what is missing from the cache (atomically), then return the world's paths."""
    spec = get_spec(preset, seed)
    root = cache_root() / f"{spec.preset}-{spec.key()}"
    world = generate_world(spec)
    ensure_entry(root / "world", lambda tmp: _build_world_dir(world, tmp), "world data")
    for which in MODELS:
        ensure_entry(
            root / which,
            lambda tmp, which=which: _build_model_dir(world, which, root / "world" / "tokenizer", progress, tmp),
            f"{which} model",
        )
    return WorldArtifacts(spec, root)
