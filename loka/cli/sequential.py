"""``loka sequential``: erasure requests arriving one batch after another, for each method.

    loka sequential --preset default --methods loka-ft,gradient_ascent,npo --out seq/
    loka sequential --preset tiny --batches 4 --set loka-ft.k=64 --set gradient_ascent.lr=3e-4

Writes ``sequential.json``, ``sequential.png`` and ``sequential.md`` into ``--out`` and prints
the table (forget accuracy on every batch after every step, retain-eval accuracy).
"""

from __future__ import annotations

import argparse

from loka.errors import LokaError
from loka.world.spec import PRESETS

DEFAULT_METHODS = "loka-ft,gradient_ascent,npo,task_vector"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sequential", help="apply erasure requests one batch after another")
    p.add_argument("--preset", default="default", help=f"world: one of {', '.join(sorted(PRESETS))}")
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    p.add_argument("--batches", type=int, default=None, help="request batches (default: 4 tiny, 5 default)")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a method setting (repeatable), e.g. --set loka-ft.k=64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="sequential", help="output directory (default ./sequential)")
    p.set_defaults(func=_sequential)


def _sequential(args: argparse.Namespace) -> int:
    from loka.cli.inputs import check_preset, check_seed, parse_method_settings
    from loka.io.atomic import write_json, write_text
    from loka.io.outputs import check_output
    from loka.methods.registry import parse_methods
    from loka.report.sequential import figure, markdown_table
    from loka.workflows.compare import check_settings
    from loka.workflows.sequential import run_sequential
    from loka.world.build import load_world

    methods = parse_methods(args.methods) or []
    if args.batches is not None and args.batches < 1:
        raise LokaError(f"--batches must be >= 1, got {args.batches}")
    check_seed(args.seed)
    check_preset(args.preset)
    settings = check_settings(methods, parse_method_settings(args.set, methods))
    reusable = lambda d: (d / "sequential.json").is_file()  # noqa: E731  (an earlier run's)
    out = check_output(args.out, kind="dir", what="output directory", reusable=reusable)
    result = run_sequential(load_world(args.preset), methods, args.batches, settings=settings,
                            seed=args.seed, progress=False).to_dict()
    write_json(out / "sequential.json", result)
    figure(result, out / "sequential.png")
    table = markdown_table(result)
    write_text(out / "sequential.md", table)
    print(table)
    print(f"wrote {out / 'sequential.json'}, {out / 'sequential.png'}, {out / 'sequential.md'}")
    return 0
