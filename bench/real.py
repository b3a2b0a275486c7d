"""LOKA on a real pretrained model: SmolLM2-135M and the shipped Harry Potter erasure request.

    python -m bench.real [--json] [--stages attribution,loka-ft,verify] [--threads 1]
    python -m bench.real --stages methods [--methods base,loka-ft,...] [--json]

Each stage runs in its own fresh process (so its peak RSS is its own: the model load included,
nothing left over from another stage) and prints one JSON object; this process collects them.

- ``attribution``: attribution patching (atp) of all 46,350 neurons and heads, forget vs the
  retain facts a method sees, as ``loka demo`` ranks them: seconds, passes, forward-equivalents
  (seconds / one cold forward over the same prompts) and peak RSS.
- ``loka-ft``: ``unlearn(..., method="loka-ft")`` with its defaults: seconds, steps, passes,
  forward-equivalents, peak RSS (and its ratio to the model's float32 size; target <= 3x).
- ``verify``: the verifier's components on the base model (`bench.verify`'s breakdown, without
  a retrain model) with the settings ``make demo-real`` uses, and one full `verify`.
- ``methods``: every method (default: those ``make demo-real`` runs, with its settings) on the
  request, measured with the verifier's own building blocks: first-token accuracy on the forget
  facts' trained templates, held-out question template and reverse queries; on the retain facts
  the methods never saw (the verifier's half, by subject), split into same-relation neighbours
  (other fiction's characters) and general knowledge (capitals, famous facts, homonyms);
  perplexity on those sentences; and the relearning attack's best recall. The README's table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench._common import PeakMemory, Timer, finish, log, machine, parser, print_table, setup

REQUEST = "examples/smollm2"
STAGES = ("attribution", "loka-ft", "verify")


def request() -> tuple[Any, Any, Any]:
    """``(verify data, unlearn task, model dir)`` of the shipped request, as ``loka demo`` reads it."""
    from loka.io.real import smollm2
    from loka.workflows.user_data import user_data

    model = smollm2(progress=True)
    data, task = user_data(model, f"{REQUEST}/forget.jsonl", f"{REQUEST}/retain.jsonl",
                           f"{REQUEST}/holdout.jsonl")
    return data, task, model


def fp32_mib(model: Any) -> float:
    return sum(p.numel() for p in model.parameters()) * 4 / 2**20


def _forward_seconds(bridge: Any, batches: list[Any]) -> float:
    import torch

    with torch.inference_mode(), Timer() as t:
        for b in batches:
            for chunk in b.chunks(64):
                bridge(chunk.input_ids, attention_mask=chunk.attention_mask)
    return t.seconds


def stage_attribution(device: str) -> dict[str, Any]:
    from attribution import tokenize_facts
    from loka.io.models import load_bridge
    from loka.workflows.demo import attribute

    _, task, model = request()
    with PeakMemory(device) as mem, Timer() as t:
        ranking = attribute(model, task.forget, task.retain)
    bridge = load_bridge(model)
    batches = [tokenize_facts(bridge.tokenizer, [f.prompt for f in fs], [f.answer for f in fs])
               for fs in (task.forget, task.retain)]
    _forward_seconds(bridge, batches)  # warm
    forward_s = _forward_seconds(bridge, batches)
    return {"seconds": t.seconds, "rank_seconds": ranking.seconds,
            "forward_passes": ranking.forward_passes, "backward_passes": ranking.backward_passes,
            "one_forward_seconds": forward_s, "forward_equivalents": ranking.seconds / forward_s,
            "components": len(ranking.components), "forget_facts": len(task.forget),
            "retain_facts": len(task.retain), **mem.to_dict()}


def stage_loka_ft(device: str) -> dict[str, Any]:
    from loka.evaluate import first_token_accuracy
    from loka.io.models import load_hf
    from loka.methods import unlearn

    data, task, model = request()
    with PeakMemory(device) as load_mem:
        hf, tok = load_hf(model)
    size = fp32_mib(hf)
    with PeakMemory(device) as mem, Timer() as t:
        result = unlearn((hf, tok), task, "loka-ft", progress=False)
    acc = {f"{split}_{kind}": first_token_accuracy(hf, tok, data.fact_set(split, kind))
           for split, kind in (("forget", "train"), ("forget", "heldout"), ("forget", "reverse"),
                               ("retain_eval", "train"))}
    return {"seconds": t.seconds, "method_seconds": result.seconds, "steps": result.steps,
            "forward_passes": result.forward_passes, "backward_passes": result.backward_passes,
            "params_changed": result.params_changed, "n_trainable": result.details["n_trainable"],
            "model_fp32_mib": size, "peak_rss_after_load_mib": load_mem.rss_mib,
            "peak_rss_ratio_to_fp32": mem.rss_mib / size, "target_ratio": 3.0,
            "target_met": mem.rss_mib / size <= 3.0, "accuracy": acc, "notes": result.notes,
            **mem.to_dict()}


def demo_verify_settings() -> Any:
    """The verifier settings ``make demo-real`` runs with (`loka.workflows.demo.REAL_VERIFY`)."""
    from loka.workflows.demo import real_model_verify_settings

    return real_model_verify_settings()


def stage_verify(device: str) -> dict[str, Any]:
    from bench.verify import counts
    from loka.verify import verifier
    from loka.verify.loaded import load_model
    from loka.verify.measure import Measurements

    data, _, model = request()
    settings = demo_verify_settings()
    me = Measurements(load_model(model, name="base", device=device), data, settings)
    items = counts(data, settings)
    rows: dict[str, Any] = {}
    for name, fn in (("accuracy", me.accuracy), ("mia", me.mia), ("truth_ratio", me.truth_ratios),
                     ("probes", me.probes), ("relearn", me.relearn), ("perplexity", me.perplexity)):
        log(f"verify component {name}")
        with PeakMemory(device) as mem, Timer() as t:
            fn()
        rows[name] = {"seconds": t.seconds, "items": items[name], **mem.to_dict()}
    log("full verification, cold")
    with PeakMemory(device) as mem, Timer() as t:
        verifier.verify(model, data, name="base", settings=settings, device=device)
    return {"verify_settings": settings.to_dict(), "components": rows,
            "full": {"seconds": t.seconds, **mem.to_dict()}}


def _groups(data: Any) -> dict[str, list[Any]]:
    """The table's fact groups (see the module doc)."""
    unseen = data.fact_set("retain_eval", "train") + data.fact_set("retain_eval", "heldout")
    return {
        "forget_train": data.fact_set("forget", "train"),
        "forget_heldout": data.fact_set("forget", "heldout"),
        "forget_reverse": data.fact_set("forget", "reverse"),
        "neighbours": [f for f in unseen if f.attribute == "surname"],
        "general": [f for f in unseen if f.attribute != "surname"],
    }


def stage_methods(device: str, methods: list[str]) -> dict[str, Any]:
    import torch

    from loka.evaluate import first_token_accuracy
    from loka.io.models import load_hf
    from loka.methods import unlearn
    from loka.verify.forward import concat_logprobs, forward_facts
    from loka.verify.metrics import perplexity
    from loka.verify.relearn import relearn_attack
    from loka.workflows.demo import real_model_settings

    data, task, model = request()
    groups, vs, settings = _groups(data), demo_verify_settings(), real_model_settings()
    sentences = data.fact_set("retain_eval", "train")
    rows: dict[str, Any] = {"n": {k: len(v) for k, v in groups.items()}}
    for name in methods:
        log(f"method {name}")
        hf, tok = load_hf(model)
        with Timer() as t:
            result = unlearn((hf, tok), task, name, progress=False, **settings.get(name, {}))
        with torch.inference_mode():
            row = {k: first_token_accuracy(hf, tok, v) for k, v in groups.items()}
            row["perplexity"] = float(perplexity(concat_logprobs(
                [forward_facts(hf, tok, sentences, k=None).text])))
        attack = relearn_attack(hf, tok, groups["forget_train"], steps=vs.relearn_steps,
                                lr=vs.relearn_lr, eval_every=vs.relearn_eval_every, seed=vs.seed)
        row |= {"relearn_best": getattr(attack, "best", None), "seconds": t.seconds,
                "steps": result.steps, "diverged": result.diverged,
                "params_changed": result.params_changed, "notes": result.notes}
        rows[name] = row
        del hf, tok, result
    return rows


def run_stage(stage: str, args: Any) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.real", "--stage-only", stage, "--threads", str(args.threads),
           "--device", args.device]
    if stage == "methods" and args.methods:
        cmd += ["--methods", args.methods]
    log(f"stage {stage} (fresh process)")
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout)


def render(out: dict[str, Any]) -> None:
    rows = []
    for stage in STAGES:
        r = out.get(stage)
        if r is None:
            continue
        secs = r.get("seconds", r.get("full", {}).get("seconds"))
        rss = r.get("peak_rss_mib", r.get("full", {}).get("peak_rss_mib"))
        rows.append((stage, secs, r.get("forward_equivalents"), rss))
    if rows:
        print_table("SmolLM2-135M (bench.real)", ("stage", "seconds", "forward-equivalents", "peak RSS MiB"), rows)
    if "methods" in out:
        m = {k: v for k, v in out["methods"].items() if k != "n"}
        cols = ("forget_train", "forget_heldout", "forget_reverse", "neighbours", "general",
                "perplexity", "relearn_best", "seconds")
        print_table("every method on the Harry Potter request", ("method", *cols),
                    [(name, *(r.get(c) for c in cols)) for name, r in m.items()])


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.real", __doc__)
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated: {', '.join(STAGES)}, methods")
    p.add_argument("--methods", default=None, help="for the methods stage (default: make demo-real's)")
    p.add_argument("--stage-only", default=None, help=argparse_hidden())
    args = p.parse_args(argv)
    device = setup(args)
    if args.stage_only:
        if args.stage_only == "methods":
            from loka.workflows.demo import REAL_MODEL_METHODS

            names = args.methods.split(",") if args.methods else list(REAL_MODEL_METHODS)
            result = stage_methods(device, names)
        else:
            result = {"attribution": stage_attribution, "loka-ft": stage_loka_ft,
                      "verify": stage_verify}[args.stage_only](device)
        print(json.dumps(result, default=float))
        return 0
    out: dict[str, Any] = {"machine": machine(device), "request": REQUEST}
    for stage in args.stages.split(","):
        out[stage] = run_stage(stage.strip(), args)
    return finish(out, args.json, render)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
