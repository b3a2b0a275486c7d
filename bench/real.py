"""LOKA on a real pretrained model: SmolLM2-135M and the shipped Harry Potter erasure request.

    python -m bench.real [--json] [--stages attribution,loka-ft,verify] [--threads 1]
    python -m bench.real --table loka-demo-real/results.json     # the README's table

Each stage runs in its own fresh process (so its peak RSS is its own: the model load included,
nothing left over from another stage) and prints one JSON object; this process collects them.

- ``attribution``: attribution patching (atp) of all 46,350 neurons and heads, forget vs the
  retain facts a method sees, as ``loka demo`` ranks them: seconds, passes, forward-equivalents
  (seconds / one cold forward over the same prompts) and peak RSS.
- ``loka-ft``: ``unlearn(..., method="loka-ft")`` with its defaults: seconds, steps, passes,
  forward-equivalents, peak RSS (and its ratio to the model's float32 size; target <= 3x).
- ``verify``: the verifier's components on the base model (`bench.verify`'s breakdown, without
  a retrain model) with the settings ``make demo-real`` uses, and one full `verify`.
- ``--table RESULTS``: the README's table from ``make demo-real``'s ``results.json`` (every
  method: forget accuracy on the trained templates, the held-out question form and the reverse
  queries; retain accuracy on the subjects no method saw; perplexity; relearning), as Markdown.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench._common import PeakMemory, Timer, finish, log, machine, parser, print_table, setup

REQUEST = "examples/smollm2"
STAGES = ("attribution", "loka-ft", "verify")
# What `make demo-real` runs (keep in step with the Makefile): the methods that fit its time on
# two cores, and the verifier settings a 49k-token vocabulary and a 135M model need there.
DEMO_METHODS = ("base", "loka-ft", "gradient_ascent", "grad_diff", "npo", "task_vector",
                "counterexample", "output_suppression")
DEMO_VERIFY = {"batch_size": 32, "n_perturbed": 2, "relearn_steps": 8, "relearn_eval_every": 4,
               "benign_steps": 8}


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
    """The verifier settings ``make demo-real`` runs with (`DEMO_VERIFY`)."""
    from loka.verify.measure import VerifySettings

    return VerifySettings(**DEMO_VERIFY)


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


TABLE_COLUMNS = (
    ("forget (trained)", ("forget", "train")), ("held-out question", ("forget", "heldout")),
    ("reverse query", ("forget", "reverse")), ("retain (unseen subjects)", ("retain_eval", "train")),
    ("retain, question form", ("retain_eval", "heldout")),
)


def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The README's table from a demo's ``results.json``: first-token accuracy per fact set and
    template, perplexity and the relearning attack's best recall, with each method's retain
    accuracy and perplexity relative to the base model's, and whether it forgot one direction
    only (trained forms at <= 0.1 while the reverse queries keep >= half the base's recall)."""
    methods = results["methods"]
    acc = lambda e, split, kind: (e.get("accuracy") or {}).get(split, {}).get(kind, {}).get("first_token")  # noqa: E731
    base = methods.get("base", {})
    rows = []
    for name, e in methods.items():
        row: dict[str, Any] = {"method": name}
        for label, (split, kind) in TABLE_COLUMNS:
            row[label] = acc(e, split, kind)
        row["perplexity"], row["relearn (best)"] = e.get("perplexity"), e.get("relearn_accuracy")
        b_ret, b_ppl, b_rev = acc(base, "retain_eval", "train"), base.get("perplexity"), acc(base, "forget", "reverse")
        row["retain / base"] = None if not b_ret or row["retain (unseen subjects)"] is None else row["retain (unseen subjects)"] / b_ret
        row["perplexity / base"] = None if not b_ppl or row["perplexity"] is None else row["perplexity"] / b_ppl
        rev, fwd = row["reverse query"], row["forget (trained)"]
        row["one direction only"] = (None if None in (rev, fwd, b_rev) or name == "base"
                                     else fwd <= 0.1 and rev >= 0.5 * b_rev)
        row["diverged"], row["seconds"] = e.get("diverged"), e.get("wall_seconds")
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    cell = lambda v: "-" if v is None else ("yes" if v is True else "no" if v is False else  # noqa: E731
                                           f"{v:.2f}" if isinstance(v, float) and abs(v) < 100 else
                                           f"{v:.0f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def run_stage(stage: str, args: Any) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.real", "--stage-only", stage, "--threads", str(args.threads),
           "--device", args.device]
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


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.real", __doc__)
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated: {', '.join(STAGES)}")
    p.add_argument("--table", default=None, metavar="RESULTS", help="print the table of a demo's results.json")
    p.add_argument("--stage-only", default=None, help=argparse_hidden())
    args = p.parse_args(argv)
    device = setup(args)
    if args.table:
        with open(args.table, encoding="utf-8") as f:
            rows = table(json.load(f))
        print(json.dumps(rows, indent=2) if args.json else markdown(rows))
        return 0
    if args.stage_only:
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
