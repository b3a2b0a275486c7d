"""Build (or load from cache) a world: its data files, tokenizer, `base` and `retrain` models.

>>> art = load_world("tiny")           # trains on the first call, then reads the cache
>>> art.base_dir, art.retrain_dir, art.info()["base"]["forget_accuracy"]   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from loka import signals
from loka.evaluate import first_token_accuracy
from loka.io.atomic import write_text
from loka.io.data import write_jsonl
from loka.world.cache import cache_root, ensure_entry, entry_problem, read_meta
from loka.world.generator import PersonSplit, TemplateKind, World, generate_world
from loka.world.spec import WorldSpec, get_spec
from loka.world.tokenizer import train_tokenizer
from loka.world.train import train_model

FACT_SPLITS: tuple[PersonSplit, ...] = ("forget", "retain_train", "retain_eval", "holdout")
MODELS = ("base", "retrain")


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
    write_text(tmp / "spec.json", json.dumps(spec.to_dict(), indent=2, sort_keys=True))
    kinds: tuple[tuple[TemplateKind, str], ...] = (("train", ""), ("qa", "_qa"), ("novel", "_novel"))
    for split in FACT_SPLITS:
        for kind, suffix in kinds:
            write_jsonl(tmp / "facts" / f"{split}{suffix}.jsonl",
                        [f.to_json() for f in world.facts(split, kind)])
    for group in ("forget", "retain", "holdout"):
        write_jsonl(tmp / "passages" / f"{group}.jsonl",
                    [{"text": p.text} for p in world.passages_in(group)])
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


_PROGRESS: list[Any] = []  # a trainer process's progress queue (set by `_init_trainer`)


def _init_trainer(progress_queue: Any, parent: int) -> None:
    from loka.children import die_with_parent

    die_with_parent(parent)
    _PROGRESS[:] = [progress_queue]


def _train_and_save(preset: str, seed: int, which: str, tokenizer_dir: str, out: str,
                    threads: int) -> dict:
    """Train one model and save it to ``out``; runs in a worker process (so takes plain values)."""
    import torch

    progress_queue = _PROGRESS[0] if _PROGRESS else None
    torch.set_num_threads(threads)
    world = generate_world(get_spec(preset, seed))
    tokenizer = cast(PreTrainedTokenizerFast, AutoTokenizer.from_pretrained(tokenizer_dir))

    def on_step(step: int, total: int, loss: float) -> None:
        if progress_queue is not None and (step % 10 == 0 or step == total):
            progress_queue.put((which, step, total, loss))

    train = replace(world.spec.train, threads=threads)
    plant = world.spec.plant
    if which == "base" and plant is not None:  # the planted worlds: forget data routed (routing.py)
        from loka.world.routing import train_routed

        result = train_routed(world, tokenizer, world.spec.model, train, plant, on_step)
    else:
        result = train_model(world, tokenizer, which == "base", world.spec.model, train, on_step)
    result.model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {
        "model": which,
        "train_seconds": round(result.seconds, 2),
        "threads": threads,
        "steps": result.steps,
        "final_loss": round(result.final_loss, 4),
        "tokens_seen": result.tokens_seen,
        "params": sum(p.numel() for p in result.model.parameters()),
        "accuracy": model_accuracies(result.model, tokenizer, world),
        **result.extra,
    }


def _train_missing(spec: WorldSpec, root: Path, missing: list[str], progress: bool) -> None:
    """Train the missing models; both at once in two single-threaded processes when both are
    missing (small matrices use one core each better than two cores for one model). Each cache
    entry is written atomically as soon as its own training finishes."""
    import multiprocessing as mp
    import queue as queue_mod
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from loka.children import terminate_pool

    ctx = mp.get_context("spawn")
    # A plain queue handed to each worker when it starts (a Manager would be one more process
    # to outlive a killed parent).
    progress_queue = ctx.Queue() if progress else None
    threads = max(1, (os.cpu_count() or 2) // len(missing)) if len(missing) > 1 else spec.train.threads
    bars = {w: tqdm(total=None, desc=f"training {w}", unit="step", disable=not progress, position=i)
            for i, w in enumerate(missing)}
    tokenizer_dir = str(root / "world" / "tokenizer")
    errors: list[BaseException] = []

    def drain() -> None:
        while progress_queue is not None:
            try:
                which, step, total, loss = progress_queue.get_nowait()
            except queue_mod.Empty:
                return
            bars[which].total = total
            bars[which].n = step
            bars[which].set_postfix(loss=f"{loss:.3f}", refresh=True)

    pool = ProcessPoolExecutor(max_workers=len(missing), mp_context=ctx, initializer=_init_trainer,
                               initargs=(progress_queue, os.getpid()))
    try:
        def run(which: str) -> None:
            def build(tmp: Path) -> dict:
                return pool.submit(_train_and_save, spec.preset, spec.seed, which, tokenizer_dir,
                                   str(tmp), threads).result()
            try:
                ensure_entry(root / which, build, f"{which} model")
            except BaseException as exc:  # re-raised in the main thread below
                errors.append(exc)

        workers = [threading.Thread(target=run, args=(w,), daemon=True) for w in missing]
        try:
            for t in workers:
                t.start()
            while any(t.is_alive() for t in workers):
                signals.check()  # a Ctrl-C / SIGTERM something swallowed stops the trainers too
                drain()
                time.sleep(0.2)
            drain()
        finally:
            for bar in bars.values():
                bar.close()
        pool.shutdown(wait=True)  # inside the guard: an interrupt while it waits stops the pool too
    except BaseException:  # Ctrl-C, SIGTERM: stop the trainers now, not after their minutes
        terminate_pool(pool)
        raise
    if errors:
        raise errors[0]


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
        return cast(PreTrainedTokenizerFast, AutoTokenizer.from_pretrained(self.world_dir / "tokenizer"))

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
    missing = [w for w in MODELS if not (root / w).exists() or entry_problem(root / w) is not None]
    if missing:
        _train_missing(spec, root, missing, progress)
    return WorldArtifacts(spec, root)
