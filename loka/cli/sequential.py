"""``loka sequential``: erasure requests arriving one batch after another, for each method.

    loka sequential --preset default --methods loka-ft,gradient_ascent,npo --out seq/
    loka sequential --preset tiny --batches 4 --set loka-ft.k=64 --set gradient_ascent.lr=3e-4

Writes ``sequential.json``, ``sequential.png`` and ``sequential.md`` into ``--out`` and prints
the table (forget accuracy on every batch after every step, retain-eval accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

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


def parse_method_settings(items: list[str], methods: list[str]) -> dict[str, dict[str, Any]]:
    """``["loka-ft.k=64"]`` -> ``{"loka-ft": {"k": 64}}`` (values read as JSON when they parse)."""
    from loka.cli.inputs import parse_set

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        method, dot, key = head.rpartition(".")
        if not (sep and dot and method and key):
            raise LokaError(f"--set expects METHOD.KEY=VALUE, got {item!r}")
        if method not in methods:
            raise LokaError(f"--set {item!r}: {method!r} is not one of --methods ({', '.join(methods)})")
        out.setdefault(method, {}).update(parse_set([f"{key}={value}"]))
    return out


def prepare_out(out: str | Path) -> Path:
    """Create ``out`` and prove it writable now, not after minutes of unlearning."""
    path = Path(out).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        raise LokaError(f"cannot write to --out {path}: {exc.strerror or exc}; "
                        "choose a writable directory") from None
    return path


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _sequential(args: argparse.Namespace) -> int:
    from loka.methods import _load_registry, get_method
    from loka.sequential import run_sequential
    from loka.sequential_report import figure, markdown_table
    from loka.world.build import load_world

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise LokaError("--methods is empty; give comma-separated method names")
    _load_registry()
    for m in methods:
        get_method(m)  # unknown: one line naming the known ones, before any work
    settings = parse_method_settings(args.set, methods)
    out = prepare_out(args.out)
    result = run_sequential(load_world(args.preset), methods, args.batches, settings=settings,
                            seed=args.seed, progress=False).to_dict()
    write_json_atomic(out / "sequential.json", result)
    figure(result, out / "sequential.png")
    table = markdown_table(result)
    (out / "sequential.md").write_text(table)
    print(table)
    print(f"wrote {out / 'sequential.json'}, {out / 'sequential.png'}, {out / 'sequential.md'}")
    return 0
