"""Inputs shared by the subcommands, all checked before any model is loaded.

A model and fact files default to the embedded world's (its ``base`` model, ``forget`` and
``retain_train`` facts) when not given. ``--set KEY=VALUE`` settings are kept as text here and
read by the method's own ``Config`` (`loka.methods.config`), which knows each setting's type.

>>> parse_set(["k=64", "kinds=neuron"])
{'k': '64', 'kinds': 'neuron'}
>>> parse_method_settings(["loka-ft.k=64"], ["loka-ft"])
{'loka-ft': {'k': '64'}}
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loka.errors import LokaError

MAX_SEED = 2**63 - 1


def add_model_args(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument("--model", help="checkpoint directory or hub name (default: the world's base model)")
    if data:
        p.add_argument("--forget", help="forget facts, JSONL (default: the world's forget facts)")
        p.add_argument("--retain", help="retain facts, JSONL (default: the world's retain-train facts)")
    p.add_argument("--preset", default="default", help="embedded world used for defaults (tiny|default)")
    add_prefix_arg(p)
    add_placement_args(p)


def add_prefix_arg(p: argparse.ArgumentParser, default: str = "the tokenizer's own, by default its BOS") -> None:
    from attribution.data import PREFIXES

    p.add_argument("--prefix", default=None, choices=PREFIXES,
                   help="what goes before every prompt and passage: bos (LOKA's worlds are trained so), eos, "
                        "or none (the prompt as the tokenizer encodes it, as generate() reads it); "
                        f"unlearn and ablate save it with the edited model, attribute in the ranking (default: {default})")


def add_placement_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto")
    p.add_argument("--device-map", default=None, metavar="auto|balanced|sequential|FILE.json",
                   help="dispatch the model across devices with accelerate (large models)")
    p.add_argument("--max-memory", default=None, metavar="DEVICE=SIZE,...",
                   help="per-device memory for --device-map, e.g. 0=20GiB,1=20GiB,cpu=64GiB")
    p.add_argument("--offload-folder", default=None, metavar="DIR",
                   help="where --device-map puts weights that fit nowhere else")


def add_attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attack", action="append", default=[], metavar="KEY=VALUE",
                   help="a verifier setting (repeatable), e.g. --attack quant_bits=4 --attack icl_shots=8")


def verify_settings_of(args: argparse.Namespace) -> Any:
    """The verifier's settings the ``--attack`` flags ask for (checked before any model loads)."""
    from loka.verify.measure import VerifySettings

    return VerifySettings.from_settings(parse_set(args.attack)) if args.attack else None


def placement_of(args: argparse.Namespace, *, disk: bool = True) -> Any:
    """The `loka.io.placement.Placement` the flags ask for (checked before any model loads);
    ``disk=False`` refuses offloading to disk (commands that train or copy the weights)."""
    from loka.io.placement import Placement

    placement = Placement.parse(args.device, args.device_map, args.max_memory, args.offload_folder)
    if not disk and placement.offload_folder is not None:
        raise LokaError("this command trains or copies the weights, which weights offloaded to disk "
                        "cannot be; give more --max-memory (and no --offload-folder), or use "
                        "`loka attribute` / `loka ablate`, which work on offloaded models")
    return placement


def resolve_model(args: argparse.Namespace) -> str:
    """``--model``, or the embedded world's base model."""
    if args.model is not None:
        return str(args.model)
    from loka.world.build import load_world

    return str(load_world(args.preset, progress=False).base_dir)


def resolve_inputs(args: argparse.Namespace) -> tuple[str, Path, Path]:
    """The model directory and fact files, filling what is missing from the embedded world."""
    model, forget, retain = args.model, args.forget, args.retain
    if model is None or forget is None or retain is None:
        from loka.world.build import load_world

        art = load_world(args.preset, progress=False)
        model = model or str(art.base_dir)
        forget = forget or art.facts_file("forget")
        retain = retain or art.facts_file("retain_train")
    return str(model), Path(forget), Path(retain)


def check_preset(preset: str) -> None:
    from loka.world.spec import get_spec

    get_spec(preset)


def check_seed(seed: int | None) -> None:
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise LokaError(f"--seed must be an integer in [0, {MAX_SEED}], got {seed}")


def parse_set(items: list[str]) -> dict[str, str]:
    """``["k=64", "kinds=neuron"]`` -> ``{"k": "64", "kinds": "neuron"}`` (typed by the Config)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LokaError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def parse_method_settings(items: list[str], methods: list[str]) -> dict[str, dict[str, str]]:
    """``["loka-ft.k=64"]`` -> ``{"loka-ft": {"k": "64"}}``; the method must be among ``methods``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        method, dot, key = head.rpartition(".")
        if not (sep and dot and method and key):
            raise LokaError(f"--set expects METHOD.KEY=VALUE, got {item!r}")
        if method not in methods:
            raise LokaError(f"--set {item!r}: {method!r} is not one of the methods run ({', '.join(methods)})")
        out.setdefault(method, {}).update(parse_set([f"{key}={value}"]))
    return out


def methods_epilog() -> str:
    """Every registered method with its settings, for ``--help`` (read from the registry)."""
    from loka.methods import specs

    lines = ["methods and their settings (--set KEY=VALUE):"]
    for spec in specs():
        lines.append(f"  {spec.name} ({spec.family}): {spec.summary}")
        for name, kind, default, text in spec.config.describe():
            lines.append(f"      {name}={default!r}  [{kind}]  {text}")
    return "\n".join(lines)
