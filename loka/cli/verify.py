"""``loka verify`` (one model, on a world or on your files) and ``loka compare`` (every method).

    loka verify --model out/ft --json                         # a world's model (or its manifest's data)
    loka verify --model out/ft --forget F --retain R [--holdout H] [--base B]   # your data, no world
    loka compare --preset tiny --methods base,retrain,loka-ft --out results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loka.errors import LokaError
from loka.world.spec import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    from loka.cli.inputs import add_attack_args, add_placement_args, add_prefix_arg, methods_epilog

    v = sub.add_parser("verify", help="measure what a model forgot, kept, and still leaks")
    v.add_argument("--model", required=True, help="checkpoint directory of the model to verify")
    v.add_argument("--preset", default=None, help=f"world: one of {', '.join(sorted(PRESETS))} "
                   "(default: the model's own world or data files, else default)")
    v.add_argument("--forget", default=None, help="your forget facts, JSONL (verifies without a world)")
    v.add_argument("--retain", default=None, help="your retain facts, JSONL (with --forget)")
    v.add_argument("--holdout", default=None, help="facts the model never saw, JSONL (for membership inference)")
    v.add_argument("--base", default=None, help="base checkpoint (default: the world's / the manifest's source)")
    v.add_argument("--retrain", default=None, help="retrain checkpoint (default: the world's)")
    v.add_argument("--no-retrain", action="store_true",
                   help="no retrain model: retrain-relative metrics are null with a reason")
    v.add_argument("--strict", action="store_true",
                   help="provenance problems (changed data, edited manifest) are errors, not warnings")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    add_prefix_arg(v, "the one saved with --model, applied to the data, base and retrain too; with none "
                      "saved, each model's own, which must agree")
    add_placement_args(v)
    add_attack_args(v)
    v.set_defaults(func=_verify)

    c = sub.add_parser("compare", help="run and verify every unlearning method on one world",
                       epilog=methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--preset", default="default", help=f"world: one of {', '.join(sorted(PRESETS))}")
    c.add_argument("--methods", default=None, help="comma-separated method names (default: all)")
    c.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a method setting (repeatable), e.g. --set loka-ft.k=64")
    c.add_argument("--out", default="results.json", help="where to write results.json")
    c.add_argument("--workers", type=int, default=None,
                   help="processes running methods side by side (default: one per core, at most 4)")
    add_attack_args(c)
    c.set_defaults(func=_compare)


def _manifest_data(model: str) -> dict[str, Any]:
    """What the checkpoint's manifest says it was made from: world preset or data files."""
    from loka.io.manifest import read_manifest

    manifest = read_manifest(model) if Path(model).is_dir() else None
    section = (manifest or {}).get("provenance") or {}
    world = section.get("world") if isinstance(section.get("world"), dict) else None
    files = [f.get("path") for f in section.get("data_files") or [] if isinstance(f, dict)]
    return {"world": world, "files": [f for f in files if isinstance(f, str)],
            "source": (manifest or {}).get("source_model")}


def _data(args: argparse.Namespace) -> tuple[Any, Any, Any, str]:
    """``(data, base, retrain, what)`` to verify against: your files, or a world."""
    from loka.cli.inputs import check_preset

    found = _manifest_data(args.model)
    forget, retain = args.forget, args.retain
    if args.preset is None and found["world"] is None and len(found["files"]) >= 2:
        # The files the model was unlearned with (`loka unlearn --forget F --retain R` records
        # them); what the user names wins, e.g. only --holdout added for membership inference.
        forget, retain = forget or found["files"][0], retain or found["files"][1]
    if forget is not None or retain is not None or args.holdout is not None:
        if forget is None or retain is None:
            raise LokaError("verifying on your data needs both --forget and --retain (and --holdout for MIA)")
        from loka.workflows.user_data import user_data

        data, _ = user_data(args.model, forget, retain, args.holdout)
        base = args.base or (found["source"] if found["source"] and Path(found["source"]).is_dir() else None)
        return data, base, None if args.no_retrain else args.retrain, "your data"
    preset = args.preset or (found["world"] or {}).get("preset") or "default"
    check_preset(preset)
    from loka.world.build import load_world

    seed = (found["world"] or {}).get("seed") if args.preset is None else None
    art = load_world(preset, seed if isinstance(seed, int) else None, progress=not args.json)
    retrain = None if args.no_retrain else (args.retrain or art.retrain_dir)
    return art, args.base or art.base_dir, retrain, f"the {preset} world"


def _verify(args: argparse.Namespace) -> int:
    from loka.cli.inputs import placement_of, verify_settings_of
    from loka.io.models import resolve_model_source, saved_prefix
    from loka.io.provenance import check_provenance
    from loka.verify.verifier import verify

    settings = verify_settings_of(args)
    placement = placement_of(args, disk=False)  # the attacks fine-tune copies of the weights
    path = Path(args.model).expanduser()
    resolve_model_source(args.model, check_memory=not placement.dispatched)  # before any world loads
    if args.strict and path.is_dir():
        problems = check_provenance(path)
        if problems:
            raise LokaError(f"provenance (--strict): {problems[0]}"
                            + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    data, base, retrain, what = _data(args)
    prefix = args.prefix or saved_prefix(path)
    report = verify(args.model, data, base=base, retrain=retrain, placement=placement, settings=settings,
                    prefix=prefix)
    out = report.to_dict()
    if what == "your data":  # which files (perhaps found in the manifest) and which base
        out["user_data"] = dict(data.info["user_data"], base=None if base is None else str(base))
    if args.json:
        print(json.dumps(out, indent=2, allow_nan=False))
        return 0
    from loka.report.terminal import print_results

    info = data.info() if hasattr(data, "info") and callable(data.info) else dict(data.info)
    print_results({"world": info, "methods": {report.model: out}})
    from loka.report.verdicts import method_caveats

    for _, note in method_caveats(out, None):  # e.g. "model damaged: retain-eval accuracy 0.41 ..."
        print(f"! {note}")
    if "user_data" in out:
        u = out["user_data"]
        print(f"verified against forget {u['forget']}, retain {u['retain']}, holdout {u['holdout']}, "
              f"base {u['base']}")
    for w in out["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from loka.cli.inputs import check_preset, parse_method_settings, verify_settings_of
    from loka.io.outputs import check_output
    from loka.methods import names
    from loka.methods.registry import parse_methods
    from loka.workflows.compare import check_settings, compare
    from loka.world.build import load_world

    vs = verify_settings_of(args)
    methods = parse_methods(args.methods)
    chosen = methods or names(compare_only=True)
    settings = parse_method_settings(args.set, chosen)
    check_settings(chosen, settings)
    check_preset(args.preset)
    if args.workers is not None and args.workers < 1:
        raise LokaError(f"--workers must be >= 1, got {args.workers}")
    out = check_output(args.out, kind="file", what="results file")
    results = compare(load_world(args.preset), methods=methods, settings=settings, out=out,
                      workers=args.workers, verify_settings=vs)  # prints the table
    print(f"wrote {out} in {results['compare_seconds']:.0f}s")
    return 0
