"""``loka attribute``: rank every neuron and head for a forget set against a retain set.

    loka attribute --preset tiny --method atp --out ranking.json --heatmap heads.png
    loka attribute --model ckpt/ --forget f.jsonl --retain r.jsonl --method patch --ablation mean

Writes the `Ranking` as JSON, optionally heatmaps (layer x head at ``--heatmap``, the layer x
neuron strip next to it as ``<name>_neurons.png``), and prints the top components.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loka.cli.inputs import add_model_args, resolve_inputs
from loka.errors import LokaError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attribute", help="rank the neurons and heads that carry the forget facts")
    add_model_args(p)
    p.add_argument("--method", default="atp", help="patch | atp | ig | actstats (default atp)")
    p.add_argument("--ablation", default=None, help="zero | mean | resample (not for actstats)")
    p.add_argument("--kinds", default="neuron,head", help="component kinds to rank")
    p.add_argument("--weight", type=float, default=1.0, help="retain weight of the contrast")
    p.add_argument("--out", default="ranking.json", help="ranking JSON to write")
    p.add_argument("--heatmap", default=None, help="PNG path for the layer x head heatmap")
    p.add_argument("--top", type=int, default=10, help="rows of the printed table")
    p.set_defaults(func=_attribute)


def load_fact_batch(tokenizer, path: Path, max_len: int):
    """A `FactBatch` from a validated JSONL fact file; problems become one-line errors."""
    from attribution import tokenize_facts
    from loka.io.data import load_facts

    facts = load_facts(path)
    try:
        return tokenize_facts(tokenizer, [f.prompt for f in facts], [f.answer for f in facts],
                              max_len=max_len)
    except ValueError as exc:
        raise LokaError(f"{path}: {exc}") from None


def _attribute(args: argparse.Namespace) -> int:
    import math
    from dataclasses import replace

    from attribution import METHODS, rank
    from attribution.data import prefix_of
    from loka.cli.inputs import check_preset, placement_of
    from loka.cli.unlearn import _kinds
    from loka.io.atomic import write_text
    from loka.io.data import load_facts
    from loka.io.models import load_bridge
    from loka.io.outputs import check_output

    if args.method not in METHODS:
        raise LokaError(f"unknown attribution method {args.method!r}; choose one of: {', '.join(sorted(METHODS))}")
    if args.ablation not in (None, "zero", "mean", "resample"):
        raise LokaError(f"--ablation must be zero, mean or resample, got {args.ablation!r}")
    if not math.isfinite(args.weight) or args.weight < 0:
        raise LokaError(f"--weight must be a finite number >= 0, got {args.weight}")
    kinds = _kinds(args.kinds)
    check_preset(args.preset)
    placement = placement_of(args)
    if args.heatmap is not None and Path(args.heatmap).suffix.lower() != ".png":
        raise LokaError(f"--heatmap {args.heatmap}: give a .png file name")
    for path in (args.forget, args.retain):
        if path is not None:
            load_facts(path)  # a malformed file fails now, before the model loads
    model, forget_path, retain_path = resolve_inputs(args)
    out_path = check_output(args.out, kind="file", sources=[model], what="ranking file")
    if args.heatmap is not None:
        check_output(args.heatmap, kind="file", sources=[model], what="heatmap")
    bridge = load_bridge(model, placement=placement)
    if args.prefix is not None:
        from attribution.data import set_prefix

        set_prefix(bridge.tokenizer, args.prefix)
    forget = load_fact_batch(bridge.tokenizer, forget_path, bridge.cfg.n_ctx)
    retain = load_fact_batch(bridge.tokenizer, retain_path, bridge.cfg.n_ctx)
    try:
        ranking = rank(bridge, forget, retain, args.method, args.ablation, kinds=kinds,
                       weight=args.weight)
    except ValueError as exc:
        raise LokaError(str(exc)) from None
    if (prefix := prefix_of(bridge.tokenizer)) != "bos":  # read after another prefix: `loka ablate` reads it
        ranking = replace(ranking, options={**ranking.options, "prefix": prefix})
    out = write_text(out_path, ranking.to_json())
    figures = _heatmaps(ranking, args.heatmap, kinds) if args.heatmap else []
    _print_top(ranking, args.top)
    print(f"{len(ranking)} components ranked by {args.method} in {ranking.seconds:.1f}s "
          f"({ranking.forward_passes} forward, {ranking.backward_passes} backward passes)")
    print(f"ranking: {out}")
    for fig in figures:
        print(f"figure: {fig}")
    return 0


def _heatmaps(ranking: Any, path: str, kinds: tuple[str, ...]) -> list[Path]:
    from attribution.plots import head_heatmap, neuron_strip
    from loka.io.atomic import write_figure

    path_ = Path(path).expanduser()
    if "head" not in kinds:
        return [write_figure(neuron_strip(ranking), path_, 120)]
    out = [write_figure(head_heatmap(ranking), path_, 120)]
    if "neuron" in kinds:
        out.append(write_figure(neuron_strip(ranking), path_.with_name(f"{path_.stem}_neurons.png"), 120))
    return out


def _print_top(ranking, n: int) -> None:
    from rich.console import Console
    from rich.table import Table

    score = dict(zip(ranking.components, zip(ranking.forget_scores.tolist(), ranking.retain_scores.tolist(),
                                             ranking.contrast_scores.tolist(), strict=True), strict=True))
    table = Table(title=f"top {n} by contrast ({ranking.formula}, weight {ranking.weight})")
    for col in ("rank", "component", "forget", "retain", "contrast"):
        table.add_column(col, justify="right")
    for i, c in enumerate(ranking.top(n), start=1):
        f, r, s = score[c]
        table.add_row(str(i), str(c), f"{f:.4f}", f"{r:.4f}", f"{s:.4f}")
    Console().print(table)
