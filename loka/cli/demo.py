"""``loka demo``: attribute -> edit -> verify -> report, in one command (what ``make demo`` runs).

    loka demo --preset default --out loka-demo
    loka demo --model DIR_OR_HUB --forget F.jsonl --retain R.jsonl [--holdout H.jsonl]
"""

from __future__ import annotations

import argparse
import shlex
import sys

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
    d.add_argument("--workers", type=int, default=None,
                   help="processes running methods side by side on a world (default: one per core, "
                        "at most 4; 1 = one after another)")
    d.set_defaults(func=_demo)


def _methods(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise LokaError("--methods is empty; give comma-separated method names")
    return names


def _demo(args: argparse.Namespace) -> int:
    from loka.demo import run_demo
    from loka.report.terminal import print_summary

    if args.model is not None and args.preset is not None:
        raise LokaError("--preset picks a world; with --model your files are the data: give one or the other")
    command = "loka demo " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["demo"] else sys.argv[1:])
    demo = run_demo(args.preset or "default", args.out, _methods(args.methods), model=args.model,
                    forget=args.forget, retain=args.retain, holdout=args.holdout, command=command,
                    workers=args.workers)
    print_summary(demo.results, demo.paths["html"], demo.seconds)
    return 0
