"""``loka ablate`` (commit a ranking's top-k as a plan) and ``loka unlearn`` (run any method).

    loka ablate --ranking ranking.json --top 64 --kinds neuron --mode zero --out out/ablated
    loka unlearn --method loka-ft --preset tiny --out out/ft --set k=64 --set lr=1e-3

Both write a NEW checkpoint with its manifest and refuse to write onto (or into) the source.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
from pathlib import Path

from loka.cli.inputs import add_model_args, check_out_dir, parse_set, resolve_inputs
from loka.errors import LokaError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="commit the top-k components of a ranking and save the model")
    add_model_args(p, data=False)
    p.add_argument("--ranking", required=True, help="ranking JSON written by `loka attribute`")
    p.add_argument("--top", type=int, required=True, help="how many top components to ablate")
    p.add_argument("--kinds", default="neuron,head", help="component kinds to take")
    p.add_argument("--mode", default="zero", help="zero | mean | rescale")
    p.add_argument("--factor", type=float, default=None, help="rescale factor (mode rescale)")
    p.add_argument("--retain", help="retain facts for mean activations (default: the world's)")
    p.add_argument("--out", required=True, help="new checkpoint directory")
    p.set_defaults(func=_ablate)

    u = sub.add_parser("unlearn", help="run an unlearning method and save the edited model")
    add_model_args(u)
    u.add_argument("--method", required=True, help="a registered method (loka, loka-ft, ...)")
    u.add_argument("--out", required=True, help="new checkpoint directory")
    u.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a method setting (repeatable), e.g. --set k=64")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--json", action="store_true", help="print the result summary as JSON")
    u.set_defaults(func=_unlearn)


def _ablate(args: argparse.Namespace) -> int:
    from attribution import Ranking
    from attribution.components import ModelShape
    from loka.cli.attribute import load_fact_batch
    from loka.engine import AblationPlan, Provenance, commit, mean_activations, save_checkpoint
    from loka.methods.localized.common import parse_kinds
    from loka.models import load_bridge

    if args.top < 1:
        raise LokaError(f"--top must be >= 1, got {args.top}")
    if args.mode not in ("zero", "mean", "rescale"):
        raise LokaError(f"--mode must be zero, mean or rescale, got {args.mode!r}")
    if (args.mode == "rescale") != (args.factor is not None):
        raise LokaError("--factor is required with --mode rescale and only with it")
    if args.factor is not None and not math.isfinite(args.factor):
        raise LokaError(f"--factor must be a finite number, got {args.factor}")
    kinds = parse_kinds(args.kinds)
    try:
        ranking = Ranking.from_json(Path(args.ranking).expanduser())
    except (ValueError, FileNotFoundError) as exc:
        raise LokaError(str(exc)) from None
    components = ranking.top(args.top, kinds)
    if len(components) < args.top:
        raise LokaError(f"--top {args.top}: the ranking has only {len(components)} {'/'.join(kinds)} components")
    model, _, _ = resolve_inputs(args)
    out = check_out_dir(args.out, model)
    bridge = load_bridge(model, args.device)
    prov = Provenance(ranking_method=ranking.method, model_id=ranking.model_id, data_hash=ranking.forget_hash)
    kw = {"shape": ModelShape.of(bridge), "provenance": prov}
    if args.mode == "zero":
        plan = AblationPlan.zero(components, **kw)
    elif args.mode == "rescale":
        plan = AblationPlan.rescale(components, args.factor, **kw)
    else:
        plan = _mean_plan(bridge, components, args, kw, load_fact_batch, mean_activations)
    journal = commit(bridge, plan)  # checks the plan fits this model before touching anything
    metrics = {"params_changed": journal.n_changed(), "components": len(components)}
    path = save_checkpoint(bridge, out, plans=[plan], source=model, metrics=metrics)
    retain_used = args.retain if args.mode == "mean" else None
    _record_provenance(path, args, [Path(args.ranking).expanduser()]
                       + ([Path(retain_used).expanduser()] if retain_used else []), seed=None,
                       world_used=args.model is None or (args.mode == "mean" and not args.retain))
    print(f"ablated {len(components)} components ({args.mode}); {metrics['params_changed']} weights changed")
    print(f"checkpoint: {path}")
    return 0


def _mean_plan(bridge, components, args, kw, load_fact_batch, mean_activations):
    """Mean mode: each component's mean activation over the retain facts."""
    from loka.engine import AblationPlan

    AblationPlan.zero(components, **kw).check_fits(kw["shape"])  # fits, before any forward pass
    retain_path = args.retain
    if retain_path is None:
        from loka.world.build import load_world

        retain_path = load_world(args.preset, progress=False).facts_file("retain_train")
    retain = load_fact_batch(bridge.tokenizer, Path(retain_path).expanduser(), bridge.cfg.n_ctx)
    means = mean_activations(bridge, retain.input_ids, retain.attention_mask, components)
    return AblationPlan.mean(components, means, **kw)


def _unlearn(args: argparse.Namespace) -> int:
    from loka.data import load_facts
    from loka.methods import UnlearnTask, _load_registry, get_method, unlearn

    _load_registry()
    fn = get_method(args.method)  # unknown method: a LokaError naming the known ones
    settings = parse_set(args.set)
    accepted = {n for n, p in inspect.signature(fn).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"seed", "progress"}
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    unknown = sorted(set(settings) - accepted)
    if unknown and not has_var_kw:
        raise LokaError(f"{args.method}: unknown setting(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(sorted(accepted))}")
    model, forget_path, retain_path = resolve_inputs(args)
    out = check_out_dir(args.out, model)
    task = UnlearnTask(forget=tuple(load_facts(forget_path)), retain=tuple(load_facts(retain_path)))
    result = unlearn(model, task, args.method, seed=args.seed, progress=not args.json,
                     device=args.device, **settings)
    path = _save(result, out, model)
    _record_provenance(path, args, [forget_path, retain_path], seed=args.seed,
                       world_used=None in (args.model, args.forget, args.retain))
    summary = result.summary() | {"n_params": sum(p.numel() for p in result.model.parameters()),
                                  "checkpoint": str(path)}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(f"{args.method}: {result.seconds:.1f}s, {result.steps} steps, "
              f"{result.params_changed} of {summary['n_params']} weights changed"
              + (f", DIVERGED at step {result.diverged_step}" if result.diverged else ""))
        for note in result.notes:
            print(f"  {note}")
        print(f"checkpoint: {path}")
    return 0


def _record_provenance(path: Path, args: argparse.Namespace, files: list, seed: int | None,
                       world_used: bool) -> None:
    """The manifest's provenance: the data files' sha256, the seed, the world its defaults came from."""
    from loka.provenance import add_provenance

    world = None
    if world_used:
        from loka.world.build import load_world

        world = load_world(args.preset, progress=False)
    add_provenance(path, seed=seed, data_files=[f for f in files if f is not None], world=world)


def _save(result, out: Path, source: str) -> Path:
    """Through ``UnlearnResult.save`` when it exists, else the engine's `save_checkpoint`."""
    if hasattr(result, "save"):
        return Path(result.save(out, source=source))
    from loka.engine import AblationPlan, save_checkpoint

    plans = [AblationPlan.from_dict(result.plan)] if result.plan else []
    return save_checkpoint(result.model, out, plans=plans, source=source,
                           metrics=json.loads(json.dumps(result.summary(), default=str)),
                           tokenizer=result.tokenizer)
