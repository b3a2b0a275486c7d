"""``loka demo``: attribute -> edit -> verify -> report, in one command (what ``make demo`` runs).

    loka demo --preset default --out loka-demo
    loka demo --model DIR_OR_HUB --forget F.jsonl --retain R.jsonl [--holdout H.jsonl]
"""

from __future__ import annotations

import argparse
import shlex
import sys

from loka.cli.inputs import add_attack_args, add_placement_args
from loka.errors import LokaError
from loka.world.spec import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="the whole pipeline on a world (or your data), with a report")
    d.add_argument("--preset", default=None,
                   help=f"world: one of {', '.join(sorted(PRESETS))} (default: default)")
    d.add_argument("--out", default="loka-demo", help="output directory (default: ./loka-demo)")
    d.add_argument("--methods", default=None,
                   help="comma-separated methods (default: base, retrain, LOKA's and every baseline)")
    d.add_argument("--model", default=None, help="your model: a checkpoint directory or hub name")
    d.add_argument("--forget", default=None, help="JSONL facts to forget (with --model)")
    d.add_argument("--retain", default=None, help="JSONL facts to keep (with --model)")
    d.add_argument("--holdout", default=None,
                   help="JSONL facts the model never saw (with --model; needed for membership inference)")
    d.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a method setting (repeatable), e.g. --set loka-ft.k=64")
    d.add_argument("--workers", type=int, default=None,
                   help="processes running methods side by side on a world (default: one per core, "
                        "at most 4; 1 = one after another)")
    add_placement_args(d)
    add_attack_args(d)
    d.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from loka.cli.inputs import parse_method_settings
    from loka.methods import names
    from loka.methods.registry import parse_methods
    from loka.report.terminal import print_summary
    from loka.workflows.demo import run_demo

    if args.model is not None and args.preset is not None:
        raise LokaError("--preset picks a world; with --model your files are the data: give one or the other")
    if args.workers is not None and args.workers < 1:
        raise LokaError(f"--workers must be >= 1, got {args.workers}")
    from loka.cli.inputs import placement_of, verify_settings_of

    vs = verify_settings_of(args)
    placement = placement_of(args, disk=False)
    if placement.dispatched and args.model is None:
        raise LokaError("--device-map is for your own large model (--model): the embedded world fits one device")
    methods = parse_methods(args.methods)
    settings = parse_method_settings(args.set, methods or names(compare_only=True))
    command = "loka demo " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["demo"] else sys.argv[1:])
    demo = run_demo(args.preset or "default", args.out, methods, model=args.model,
                    forget=args.forget, retain=args.retain, holdout=args.holdout, command=command,
                    workers=args.workers, settings=settings, placement=placement, verify_settings=vs)
    print_summary(demo.results, demo.paths["html"], demo.seconds)
    return 0
