"""Inputs shared by ``loka attribute``, ``loka ablate`` and ``loka unlearn``.

A model and fact files default to the embedded world's (its ``base`` model, ``forget`` and
``retain_train`` facts) when not given; an output must never land on or inside the source model.

>>> model, forget, retain = resolve_inputs(args)   # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from loka.errors import LokaError


def add_model_args(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument("--model", help="checkpoint directory or hub name (default: the world's base model)")
    if data:
        p.add_argument("--forget", help="forget facts, JSONL (default: the world's forget facts)")
        p.add_argument("--retain", help="retain facts, JSONL (default: the world's retain-train facts)")
    p.add_argument("--preset", default="default", help="embedded world used for defaults (tiny|default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto")


def resolve_inputs(args: argparse.Namespace) -> tuple[str, Path | None, Path | None]:
    """The model directory and fact files, filling what is missing from the embedded world."""
    model = args.model
    forget, retain = getattr(args, "forget", None), getattr(args, "retain", None)
    if model is None or (hasattr(args, "forget") and (forget is None or retain is None)):
        from loka.world.build import load_world

        art = load_world(args.preset, progress=False)
        model = model or str(art.base_dir)
        forget = forget or art.facts_file("forget")
        retain = retain or art.facts_file("retain_train")
    return str(model), None if forget is None else Path(forget), None if retain is None else Path(retain)


def check_out_dir(out: str | Path, source: str | Path) -> Path:
    """Refuse an output directory that is the source model's, or inside it."""
    target, src = Path(out).expanduser().resolve(), Path(source).expanduser()
    if src.exists():
        src = src.resolve()
        if target == src or target.is_relative_to(src):
            raise LokaError(f"refusing to write into the source model directory {src}; "
                            "choose a new --out directory")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise LokaError(f"--out {target} exists and is not an empty directory; choose a new one")
    return target


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["k=64", "lr=1e-3", "kinds=neuron"]`` -> ``{"k": 64, "lr": 0.001, "kinds": "neuron"}``.

    Values are read as JSON when they parse (numbers, true/false, null, NaN), else kept as text.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LokaError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
