"""Attribution and `loka-ft` cost as the model grows (tiny, default, large): the curve and its slope.

    python -m bench.scale [--presets tiny default large] [--items 128] [--train] [--json]

Per preset, on ``--items`` forget and ``--items`` retain-train facts of that world:
- ``one_forward_seconds``: one forward pass over both sets, median of 3 after a warm-up (the
  unit of forward-equivalents);
- ``atp``: attribution patching over every neuron and head (`attribution.rank`, zero ablation);
- ``patch``: batched exhaustive activation patching on a fixed subset of ``--patch-components``
  components spread evenly over the model, and that cost scaled to every component
  (``patch_all_seconds_est``: batched patching costs one replicated pass per few components, so
  its cost is linear in the number of components; the subset spans the layers evenly, and a
  resumed pass's cost depends on its layer);
- ``loka-ft``: the method with its defaults on the world's erasure request, from the trained
  base model (seconds, steps, forget accuracy reached, ratio to that world's cached retrain time).

Attribution cost does not depend on the weights, so a preset whose models are not cached (the
``large`` preset, about an hour to train on 2 cores) is measured on a random-init model of the
same shape with the world's tokenizer (``weights: random-init``); ``--train`` builds it instead.
``loka-ft`` runs on trained models only. The slope is ``numpy.polyfit`` of log seconds on log
parameters (1.0 = linear in the parameter count).
"""

from __future__ import annotations

import atexit
import shutil
import statistics
import tempfile
from typing import Any

from bench._common import PeakMemory, Timer, finish, log, machine, parser, print_table, setup, sync


def trained_world(preset: str, train: bool) -> Any | None:
    """The world's artifacts if its models are cached (or ``train``), else None (no training)."""
    from loka.world.build import MODELS, load_world
    from loka.world.cache import cache_root, entry_problem
    from loka.world.spec import get_spec

    spec = get_spec(preset)
    root = cache_root() / f"{spec.preset}-{spec.key()}"
    cached = all((root / m).exists() and entry_problem(root / m) is None for m in MODELS)
    return load_world(preset, progress=True) if cached or train else None


def model_for(preset: str, art: Any | None, device: str, seed: int) -> tuple[Any, Any, Any, str]:
    """(HF model, tokenizer, world, weights) — the cached base model, or a random-init twin."""
    import torch

    from loka.io.models import load_hf

    if art is not None:
        model, tok = load_hf(art.base_dir, device)
        return model, tok, art.world, "trained"
    from transformers import GPTNeoXForCausalLM

    from loka.world.generator import generate_world
    from loka.world.spec import get_spec
    from loka.world.tokenizer import train_tokenizer
    from loka.world.train import neox_config

    spec = get_spec(preset)
    world = generate_world(spec)
    tok = train_tokenizer(world.corpus(), spec.model.vocab_size)
    torch.manual_seed(seed)
    # Saved and reloaded like every real checkpoint: booting a bridge reads the directory
    # again, so it lives until the process exits.
    tmp = tempfile.mkdtemp(prefix=f"loka-bench-{preset}-")
    atexit.register(shutil.rmtree, tmp, True)
    GPTNeoXForCausalLM(neox_config(spec.model, tok)).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    model, tok = load_hf(tmp, device)
    return model, tok, world, "random-init"


def fact_sets(world: Any, tok: Any, items: int, n_ctx: int) -> tuple[Any, Any]:
    """The first ``items`` forget and retain-train facts, tokenised (same count for every size)."""
    from attribution import tokenize_facts

    out = []
    for split in ("forget", "retain_train"):
        facts = world.facts(split)[:items]
        out.append(tokenize_facts(tok, [f.prompt for f in facts], [f.answer for f in facts],
                                  max_len=n_ctx))
    return out[0], out[1]


def attribution_cost(bridge: Any, forget: Any, retain: Any, subset: int, device: str
                     ) -> dict[str, Any]:
    """Seconds of one forward over both sets, of atp over everything, of patching on a subset."""
    import torch

    from attribution import ModelShape, rank
    from attribution.methods import patch

    def forward() -> float:
        with Timer() as t, torch.inference_mode():
            for batch in (forget, retain):
                b = batch.to(device)
                bridge(b.input_ids, attention_mask=b.attention_mask)
            sync(device)
        return t.seconds

    forward()  # warm-up: the first pass pays for allocations and lazy initialisation
    forward_s = statistics.median(forward() for _ in range(3))
    with PeakMemory(device) as mem, Timer() as t_atp:
        ranking = rank(bridge, forget, retain, "atp", "zero")
        sync(device)
    comps = ModelShape.of(bridge).components()
    chosen = comps[:: max(1, len(comps) // subset)][:subset]
    with Timer() as t_patch:
        scores = patch(bridge, forget, retain, chosen, ablation="zero", progress=False)
        sync(device)
    return {"n_components": len(comps), "one_forward_seconds": forward_s,
            "atp_seconds": t_atp.seconds, "atp_forward_passes": ranking.forward_passes,
            "atp_backward_passes": ranking.backward_passes,
            "atp_forward_equivalents": t_atp.seconds / forward_s,
            "atp_peak_rss_mib": round(mem.rss_mib, 1), "atp_peak_cuda_mib": mem.cuda_mib,
            "patch_components": len(chosen), "patch_subset_seconds": t_patch.seconds,
            "patch_subset_forward_passes": scores.forward_passes,
            "patch_all_seconds_est": t_patch.seconds * len(comps) / len(chosen)}


def loka_ft_cost(art: Any, device: str, seed: int) -> dict[str, Any]:
    """`loka-ft` with its defaults on the world's request: seconds and what it reached."""
    from loka.evaluate import first_token_accuracy
    from loka.methods import task_from_world, unlearn

    with Timer() as t:
        result = unlearn(art.base_dir, task_from_world(art), method="loka-ft", seed=seed,
                         progress=False, device=device)
        sync(device)
    world, retrain_s = art.world, art.info()["retrain_train_seconds"]
    return {"loka_ft_seconds": t.seconds, "loka_ft_steps": result.steps,
            "loka_ft_forget_accuracy": first_token_accuracy(result.model, result.tokenizer, world.facts("forget")),
            "loka_ft_retain_accuracy": first_token_accuracy(result.model, result.tokenizer,
                                                            world.facts("retain_eval")),
            "retrain_seconds_cached": retrain_s, "loka_ft_ratio_to_retrain": t.seconds / retrain_s}


def measure(preset: str, args: Any, device: str) -> dict[str, Any]:
    from loka.methods.localized.common import analysis_bridge

    art = None if args.random_init else trained_world(preset, args.train)
    model, tok, world, weights = model_for(preset, art, device, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    log(f"{preset}: {n_params:,} params ({weights}); attribution")
    bridge = analysis_bridge(model, tok)
    forget, retain = fact_sets(world, tok, args.items, model.config.max_position_embeddings)
    row = {"preset": preset, "weights": weights, "params": n_params, "non_embedding_params": n_params - embed,
           "items_per_set": len(forget), **attribution_cost(bridge, forget, retain, args.patch_components, device)}
    if art is not None and not args.skip_loka_ft:
        log(f"{preset}: loka-ft")
        row |= loka_ft_cost(art, device, args.seed)
    return row


def slopes(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Log-log slope of each cost against parameters (None with fewer than two points)."""
    import numpy as np

    out: dict[str, float | None] = {}
    for key in ("one_forward_seconds", "atp_seconds", "patch_subset_seconds", "patch_all_seconds_est",
                "loka_ft_seconds"):
        pts = [(r["params"], r[key]) for r in rows if r.get(key)]
        out[key] = float(np.polyfit(np.log([p for p, _ in pts]), np.log([s for _, s in pts]), 1)[0]) \
            if len(pts) >= 2 else None
    return out


def render(out: dict[str, Any]) -> None:
    print_table("attribution and loka-ft cost vs model size",
                ("preset", "weights", "params", "components", "forward s", "atp s", "atp fwd-eq",
                 f"patch {out['rows'][0]['patch_components']} s", "patch all s (est.)", "loka-ft s", "loka-ft steps"),
                [(r["preset"], r["weights"], f"{r['params']:,}", r["n_components"], r["one_forward_seconds"],
                  r["atp_seconds"], r["atp_forward_equivalents"], r["patch_subset_seconds"],
                  r["patch_all_seconds_est"], r.get("loka_ft_seconds"), r.get("loka_ft_steps"))
                 for r in out["rows"]])
    print_table("log-log slope of seconds vs parameters", ("cost", "slope"), list(out["slopes"].items()))


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.scale", __doc__)
    p.add_argument("--presets", nargs="+", default=["tiny", "default", "large"])
    p.add_argument("--items", type=int, default=128, help="facts per set (forget, retain)")
    p.add_argument("--patch-components", type=int, default=64)
    p.add_argument("--train", action="store_true", help="train presets that are not cached (slow)")
    p.add_argument("--random-init", action="store_true", help="random-init models for every preset")
    p.add_argument("--skip-loka-ft", action="store_true")
    args = p.parse_args(argv)
    device = setup(args)
    out: dict[str, Any] = {"machine": machine(device), "items_per_set": args.items}
    out["rows"] = [measure(preset, args, device) for preset in args.presets]
    out["slopes"] = slopes(out["rows"])
    return finish(out, args.json, render)


if __name__ == "__main__":
    raise SystemExit(main())
