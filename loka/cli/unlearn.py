"""``loka ablate`` (commit a ranking's top-k as a plan) and ``loka unlearn`` (run any method).

    loka ablate --ranking ranking.json --top 64 --kinds neuron --mode zero --out out/ablated
    loka unlearn --method loka-ft --preset tiny --out out/ft --set k=64 --set lr=1e-3

Both check every input (method, settings, seed, data files, ranking, output) before loading
the model, and write a NEW checkpoint with its sealed manifest through the one save path: never
onto, into or around a model or the cache, never with non-finite weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loka.cli.inputs import (
    add_model_args,
    check_preset,
    check_seed,
    methods_epilog,
    parse_set,
    placement_of,
    resolve_inputs,
    resolve_model,
)
from loka.errors import LokaError

if TYPE_CHECKING:
    from attribution import ComponentKind


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="commit the top-k components of a ranking and save the model")
    add_model_args(p, data=False)
    p.add_argument("--ranking", required=True, help="ranking JSON written by `loka attribute`")
    p.add_argument("--top", type=int, required=True, help="how many top components to ablate")
    p.add_argument("--kinds", default="neuron,head", help="component kinds to take")
    p.add_argument("--mode", default="zero", choices=("zero", "mean", "rescale"), help="zero | mean | rescale")
    p.add_argument("--factor", type=float, default=None, help="rescale factor (mode rescale)")
    p.add_argument("--retain", help="retain facts for mean activations (default: the world's)")
    p.add_argument("--allow-other-model", action="store_true",
                   help="apply a ranking made on another model (same shape required)")
    p.add_argument("--out", required=True, help="new checkpoint directory")
    p.set_defaults(func=_ablate)

    u = sub.add_parser("unlearn", help="run an unlearning method and save the edited model",
                       epilog=methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(u)
    u.add_argument("--method", required=True, help="a registered method (listed below)")
    u.add_argument("--out", required=True, help="new checkpoint directory")
    u.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a method setting (repeatable), e.g. --set k=64")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--json", action="store_true", help="print the result summary as JSON")
    u.set_defaults(func=_unlearn)


def _kinds(text: str) -> tuple[ComponentKind, ...]:
    from attribution.components import parse_kinds  # torch loads only when a command runs

    try:
        return parse_kinds(text)
    except ValueError as e:
        raise LokaError(f"--{e}") from None


def _ranking(path: str) -> Any:
    from attribution import Ranking

    try:
        return Ranking.load(Path(path).expanduser())
    except (ValueError, FileNotFoundError) as exc:
        raise LokaError(str(exc)) from None


def _ablate(args: argparse.Namespace) -> int:
    import math

    from loka.engine import commit
    from loka.io.checkpoint import save_checkpoint
    from loka.io.models import load_bridge
    from loka.io.outputs import check_output
    from loka.io.provenance import provenance_section

    if args.top < 1:
        raise LokaError(f"--top must be >= 1, got {args.top}")
    if (args.mode == "rescale") != (args.factor is not None):
        raise LokaError("--factor is required with --mode rescale and only with it")
    if args.factor is not None and not math.isfinite(args.factor):
        raise LokaError(f"--factor must be a finite number, got {args.factor}")
    kinds = _kinds(args.kinds)
    check_preset(args.preset)
    placement = placement_of(args)
    ranking = _ranking(args.ranking)
    components = ranking.top(args.top, kinds)
    if len(components) < args.top:
        raise LokaError(f"--top {args.top}: the ranking has only {len(components)} {'/'.join(kinds)} components")
    model = resolve_model(args)
    out = check_output(args.out, kind="dir", sources=[model], what="checkpoint directory")
    retain = _retain_file(args) if args.mode == "mean" else None
    ranked = ranking.options.get("prefix", "bos")  # what `loka attribute` read before each prompt
    if args.prefix is None and ranked != "bos":
        args.prefix = ranked
    elif (args.prefix or "bos") != ranked and not args.allow_other_model:
        raise LokaError(f"the ranking was made with prefix {ranked!r}, not {args.prefix or 'bos'!r}; give "
                        f"--prefix {ranked}, or pass --allow-other-model to apply it anyway")
    if args.prefix is not None and placement.dispatched:
        raise LokaError("--prefix with --device-map: the streamed edit keeps the source's tokenizer as it is; "
                        "ablate without --device-map, or set the prefix when you verify (loka verify --prefix)")
    if ranking.model_id not in (model, str(Path(model).expanduser().resolve())) and not args.allow_other_model:
        raise LokaError(f"the ranking was made on {ranking.model_id!r}, not on {model!r}; rank this "
                        "model (loka attribute), or pass --allow-other-model to apply it anyway")
    files = [Path(args.ranking).expanduser()] + ([retain] if retain else [])
    world = _world(args) if args.model is None or (retain and not args.retain) else None
    bridge = load_bridge(model, placement=placement)
    if args.prefix is not None:
        from attribution.data import set_prefix

        set_prefix(bridge.tokenizer, args.prefix)
    if placement.dispatched:  # the edit streams through the checkpoint's shards
        from loka.engine.stream import commit_to_checkpoint

        plan = _plan(bridge, components, ranking, args, retain)
        path = commit_to_checkpoint(model, plan, out, provenance=provenance_section(data_files=files, world=world),
                                    metrics={"components": len(components)})
        print(f"ablated {len(components)} components ({args.mode}), streamed shard by shard")
        print(f"checkpoint: {path}")
        return 0
    plan = _plan(bridge, components, ranking, args, retain)
    journal = commit(bridge, plan)  # checks the plan fits and stays finite, or changes nothing
    from loka.evaluate import FINITE_CHECK_TEXTS, outputs_finite

    if not outputs_finite(bridge.original_model, bridge.tokenizer, FINITE_CHECK_TEXTS):
        raise LokaError("the edited model's outputs are not finite (the weights overflow); nothing "
                        "was saved — use a smaller --factor")
    metrics = {"params_changed": journal.n_changed(), "components": len(components)}
    path = save_checkpoint(bridge, out, method="ablation_plan", source=model, plans=[plan.to_dict()],
                           metrics=metrics, provenance=provenance_section(data_files=files, world=world))
    print(f"ablated {len(components)} components ({args.mode}); {metrics['params_changed']} weights changed")
    print(f"checkpoint: {path}")
    return 0


def _retain_file(args: argparse.Namespace) -> Path:
    if args.retain is not None:
        from loka.io.data import load_facts

        load_facts(args.retain)  # a malformed file fails now, before the model loads
        return Path(args.retain).expanduser()
    return _world(args).facts_file("retain_train")


def _world(args: argparse.Namespace) -> Any:
    from loka.world.build import load_world

    return load_world(args.preset, progress=False)


def _plan(bridge: Any, components: list, ranking: Any, args: argparse.Namespace,
          retain: Path | None) -> Any:
    """The plan, checked against this model before anything is computed."""
    from attribution.components import ModelShape
    from loka.cli.attribute import load_fact_batch
    from loka.engine import AblationPlan, Provenance, mean_activations

    prov = Provenance(ranking_method=ranking.method, model_id=ranking.model_id, data_hash=ranking.forget_hash)
    kw: dict[str, Any] = {"shape": ModelShape.of(bridge), "provenance": prov}
    # The whole ranking fits this model (not just the top k), before any forward pass.
    AblationPlan.zero(list(ranking.components), **kw).check_fits(kw["shape"])
    if args.mode == "zero":
        plan = AblationPlan.zero(components, **kw)
    elif args.mode == "rescale":
        plan = AblationPlan.rescale(components, args.factor, **kw)
    else:
        if retain is None:
            raise LokaError("--mode mean needs retain facts for the mean activations")
        batch = load_fact_batch(bridge.tokenizer, retain, bridge.cfg.n_ctx)
        plan = AblationPlan.mean(components, mean_activations(bridge, batch.input_ids,
                                                              batch.attention_mask, components), **kw)
    return plan


def _unlearn(args: argparse.Namespace) -> int:
    from loka.io.data import load_facts
    from loka.io.outputs import check_output
    from loka.methods import UnlearnTask, get, unlearn

    spec = get(args.method)  # unknown method: a LokaError naming the known ones
    settings = parse_set(args.set)
    spec.config.from_settings(settings, method=args.method)  # bad settings fail before any loading
    check_seed(args.seed)
    placement = placement_of(args, disk=False)
    check_preset(args.preset)
    if args.model is not None:
        check_output(args.out, kind="dir", sources=[args.model], what="checkpoint directory")
    forget_given, retain_given = args.forget, args.retain
    for path in (forget_given, retain_given):
        if path is not None:
            load_facts(path)
    model, forget_path, retain_path = resolve_inputs(args)
    out = check_output(args.out, kind="dir", sources=[model], what="checkpoint directory")
    # Methods see the training forms only; other templates (held-out, reverse) are the verifier's.
    forget = [f for f in load_facts(forget_path) if f.kind == "train"]
    retain = [f for f in load_facts(retain_path) if f.kind == "train"]
    if not forget:
        raise LokaError(f"{forget_path}: no facts in a training form (template absent or 'train')")
    overlap = {(f.prompt, f.answer) for f in forget} & {(f.prompt, f.answer) for f in retain}
    if overlap:
        print(f"warning: {len(overlap)} fact(s) are both in --forget and --retain; the methods will "
              "pull them both ways", flush=True)
    task = UnlearnTask(forget=tuple(forget), retain=tuple(retain))
    if args.method == "retrain" and args.model is None and "retrain_dir" not in settings:
        task = UnlearnTask(task.forget, task.retain, retrain_dir=_world(args).retrain_dir)
    result = unlearn(model, task, args.method, seed=args.seed, progress=not args.json,
                     placement=placement, prefix=args.prefix, **settings)
    world = _world(args) if None in (args.model, args.forget, args.retain) else None
    path = result.save(out, source=model, data_files=[forget_path, retain_path], world=world)
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
