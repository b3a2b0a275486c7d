"""``loka verify`` (one model against the world's retrain gold standard) and ``loka compare``."""

from __future__ import annotations

import argparse
import json
import sys

from loka.world.spec import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("verify", help="measure what a model forgot, kept, and still leaks")
    v.add_argument("--model", required=True, help="checkpoint directory of the model to verify")
    v.add_argument("--preset", default="default", help=f"world: one of {', '.join(sorted(PRESETS))}")
    v.add_argument("--base", default=None, help="base checkpoint (default: the world's)")
    v.add_argument("--retrain", default=None, help="retrain checkpoint (default: the world's)")
    v.add_argument("--no-retrain", action="store_true",
                   help="no retrain model: retrain-relative metrics are null with a reason")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=_verify)

    c = sub.add_parser("compare", help="run and verify every unlearning method on one world")
    c.add_argument("--preset", default="default", help=f"world: one of {', '.join(sorted(PRESETS))}")
    c.add_argument("--methods", default=None, help="comma-separated method names (default: all)")
    c.add_argument("--out", default="results.json", help="where to write results.json")
    c.add_argument("--workers", type=int, default=None,
                   help="processes running methods side by side (default: one per core, at most 4)")
    c.set_defaults(func=_compare)


def _verify(args: argparse.Namespace) -> int:
    from loka.provenance import check_provenance
    from loka.verify.verifier import verify
    from loka.world.build import load_world

    for w in check_provenance(args.model):  # re-hash source, data files and weights (issue 9)
        print(f"warning: provenance: {w}", file=sys.stderr)
    art = load_world(args.preset, progress=not args.json)
    retrain = None if args.no_retrain else (args.retrain or art.retrain_dir)
    report = verify(args.model, art, base=args.base or art.base_dir, retrain=retrain)
    out = report.to_dict()
    if args.json:
        print(json.dumps(out, indent=2, allow_nan=False))
        return 0
    from loka.verify.table import print_results

    print_results({"world": art.info(), "methods": {report.model: out}})
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from loka.verify.compare import compare
    from loka.world.build import load_world

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    results = compare(load_world(args.preset), methods=methods, out=args.out,  # prints the table
                      workers=args.workers)
    print(f"wrote {args.out} in {results['compare_seconds']:.0f}s")
    return 0
