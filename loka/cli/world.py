"""``loka world build`` and ``loka world info``: the embedded synthetic world and its two models."""

from __future__ import annotations

import argparse
import json
import time

from loka.world.spec import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    world = sub.add_parser("world", help="build or describe the embedded synthetic world")
    wsub = world.add_subparsers(dest="world_command", metavar="ACTION", required=True)
    for name, helptext, func in (
        ("build", "train (or load from cache) the world's base and retrain models", _build),
        ("info", "describe a built world (builds it first if needed)", _info),
    ):
        p = wsub.add_parser(name, help=helptext)
        p.add_argument("--preset", default="default", help=f"one of: {', '.join(sorted(PRESETS))}")
        p.add_argument("--seed", type=int, default=None, help="world seed (default: the preset's)")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(func=func)


def _build(args: argparse.Namespace) -> int:
    from loka.cli.inputs import check_seed
    from loka.world.build import load_world

    check_seed(args.seed)
    t0 = time.perf_counter()
    art = load_world(args.preset, args.seed, progress=not args.json)
    info = art.info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"world {info['preset']} (seed {info['seed']}) ready in {time.perf_counter() - t0:.1f}s: {art.root}")
        _print_table(info)
    return 0


def _info(args: argparse.Namespace) -> int:
    from loka.cli.inputs import check_seed
    from loka.world.build import load_world

    check_seed(args.seed)
    info = load_world(args.preset, args.seed, progress=not args.json).info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_table(info)
    return 0


def _print_table(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{info['people']} people ({info['forget_people']} forget, "
                        f"{info['retain_people']} retain, {info['holdout_people']} holdout), "
                        f"{info['params'] / 1e6:.2f}M params")
    table.add_column("model")
    for col in ("forget", "retain-eval", "holdout", "held-out template (forget)", "train s"):
        table.add_column(col, justify="right")
    for which in ("base", "retrain"):
        acc = info[which]
        table.add_row(which, f"{acc['forget_accuracy']:.3f}", f"{acc['retain_accuracy']:.3f}",
                      f"{acc['holdout_accuracy']:.3f}", f"{acc['heldout_template_forget_accuracy']:.3f}",
                      f"{info[f'{which}_train_seconds']:.0f}")
    Console().print(table)
