"""LOKA on a real pretrained model: SmolLM2-135M and the shipped Harry Potter erasure request.

    python -m bench.real [--json] [--stages attribution,loka-ft,loka-deep,verify] [--threads 2]
    python -m bench.real --stages npo,task_vector       # any method, as the loka-ft stage runs it
    python -m bench.real --stages measurements         # the verifier, per measurement
    python -m bench.real --table loka-demo-real/results.json     # the README's table

Each stage runs in its own fresh process (so its peak RSS is its own: the model load included,
nothing left over from another stage) and prints one JSON object; this process collects them.
Forward-equivalents are a stage's seconds over one warm forward pass of the model over the
request's training facts (forget + the retain facts a method sees), in that stage's process.

- ``attribution``: attribution patching (atp) of all 46,350 neurons and heads, forget vs the
  retain facts a method sees, as ``loka demo`` ranks them (as loka-ft does, which then reuses
  the ranking): seconds, passes, forward-equivalents and peak RSS.
- ``loka-ft``, ``loka-deep``: ``unlearn(..., method=...)`` with its defaults on the loaded model:
  seconds, steps, passes, forward-equivalents, peak RSS (and its ratio to the model's float32
  size; loka-ft's target <= 3x); and first-token accuracy before and after on the forget facts'
  trained templates, held-out question form and reverse queries and on the retain facts of the
  subjects no method saw, perplexity, and the relearning attack's best recall (after).
  loka-ft's edited model is saved with its manifest, as ``loka unlearn`` writes it.
- ``verify``: ``loka verify --model EDITED --holdout H --json`` on that checkpoint, as a user runs
  it (the manifest names the forget and retain files and the base model), with the verifier
  settings ``make demo-real`` uses: wall time, forward-equivalents, the child's peak RSS, and
  the report's headline numbers (damage included).
- any other method's name (``npo``, ``task_vector``...): that method as the ``loka-ft`` stage
  runs loka-ft (the numbers of methods ``make demo-real`` leaves out for time).
- ``measurements`` (only when named): every verifier measurement on its own, seconds, peak RSS
  and the resident set after it (`bench.verify.breakdown`), with ``DEMO_VERIFY``'s settings.
- ``--table RESULTS``: the README's table from ``make demo-real``'s ``results.json`` (every
  method: forget accuracy on the trained templates, the held-out question form and the reverse
  queries; retain accuracy on the subjects no method saw; perplexity; relearning), as Markdown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench._common import PeakMemory, Timer, finish, log, machine, parser, print_table, setup

REQUEST = "examples/smollm2"
STAGES = ("attribution", "loka-ft", "loka-deep", "verify")
EXTRA_STAGES = ("measurements",)  # run only when named: the verifier's per-measurement breakdown
# What `make demo-real` runs (keep in step with the Makefile): the methods that fit its time on
# two cores, and the verifier settings a 49k-token vocabulary and a 135M model need there.
DEMO_METHODS = ("base", "loka-ft", "gradient_ascent", "output_suppression")
# Two verifier threads (a 135M model's matrices use both cores; the default 1 is for the
# world's small ones) and no benign relearning attack (8 fine-tuning steps on the retain facts:
# 214 of 443 s and the 7.2 GB peak of one verification; `loka verify` runs it by default), and
# the never-known floor on 8 of the 15 holdout people (all 15: 38.5 s a model, 2026-12-04).
DEMO_VERIFY = {"batch_size": 32, "n_perturbed": 2, "relearn_steps": 8, "relearn_eval_every": 4,
               "benign_steps": 8, "threads": 2, "skip": "benign_relearn", "never_known_names": 8}


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


def _forward_seconds(model: Any, tokenizer: Any, facts: list[Any]) -> float:
    """Seconds of one forward pass over ``facts`` (minibatches of 64), after a warm-up pass."""
    import torch

    from attribution import tokenize_facts

    batch = tokenize_facts(tokenizer, [f.prompt for f in facts], [f.answer for f in facts])
    with torch.inference_mode():
        for _warm_then_timed in range(2):
            with Timer() as t:
                for chunk in batch.chunks(64):
                    model(chunk.input_ids, attention_mask=chunk.attention_mask)
    return t.seconds


def stage_attribution(device: str, save: str | None) -> dict[str, Any]:
    from loka.io.models import load_hf
    from loka.workflows.demo import attribute_as_loka_ft

    _, task, model = request()
    with PeakMemory(device) as mem, Timer() as t:
        ranking = attribute_as_loka_ft(model, task)
    hf, tok = load_hf(model)
    forward_s = _forward_seconds(hf, tok, [*task.forget, *task.retain])
    return {"seconds": t.seconds, "rank_seconds": ranking.seconds,
            "forward_passes": ranking.forward_passes, "backward_passes": ranking.backward_passes,
            "one_forward_seconds": forward_s, "forward_equivalents": ranking.seconds / forward_s,
            "components": len(ranking.components), "forget_facts": len(task.forget),
            "retain_facts": len(task.retain), **mem.to_dict()}


# The fact sets of the table: forget facts in the trained templates, the held-out question form
# and the reverse queries; retain facts of the subjects no method saw, in both forms.
TABLE_SETS = (("forget", "train"), ("forget", "heldout"), ("forget", "reverse"),
              ("retain_eval", "train"), ("retain_eval", "heldout"))


def quick_table(hf: Any, tok: Any, data: Any, *, relearn: bool) -> dict[str, Any]:
    """First-token accuracy per fact set, perplexity and (``relearn``) the relearning attack's
    best recall, with the verifier's own measurements and `DEMO_VERIFY`'s settings."""
    from loka.verify.loaded import load_model
    from loka.verify.measure import Measurements
    from loka.verify.measurements.accuracy import accuracy_table
    from loka.verify.measurements.perplexity import perplexity_of
    from loka.verify.measurements.relearn import relearn_of
    from loka.verify.missing import Missing

    me = Measurements(load_model((hf, tok), name="model"), data, demo_verify_settings())
    acc = accuracy_table(me)
    row: dict[str, Any] = {f"{split}_{kind}": acc.get(split, {}).get(kind, {}).get("first_token")
                           for split, kind in TABLE_SETS}
    ppl = perplexity_of(me)
    row["perplexity"] = None if isinstance(ppl, Missing) else ppl
    if relearn:
        r = relearn_of(me)
        row["relearn_best"] = None if isinstance(r, Missing) else r.best
    return row


def stage_method(method: str, device: str, save: str | None) -> dict[str, Any]:
    """One method on the request: seconds, forward-equivalents and peak RSS of the method alone
    (the model already loaded), the table's numbers before and after, and (``save``) the edited
    checkpoint with its manifest, as ``loka unlearn`` writes it, for the verify stage."""
    from loka.io.models import load_hf
    from loka.methods import unlearn

    data, task, model = request()
    with PeakMemory(device) as load_mem:
        hf, tok = load_hf(model)
    size = fp32_mib(hf)
    forward_s = _forward_seconds(hf, tok, [*task.forget, *task.retain])
    before = quick_table(hf, tok, data, relearn=False)
    with PeakMemory(device) as mem, Timer() as t:
        result = unlearn((hf, tok), task, method, progress=False)
    after = quick_table(hf, tok, data, relearn=True)
    if save:
        result.save(save, source=model, data_files=[f"{REQUEST}/forget.jsonl", f"{REQUEST}/retain.jsonl"])
    return {"method": method, "seconds": t.seconds, "method_seconds": result.seconds,
            "steps": result.steps, "forward_passes": result.forward_passes,
            "backward_passes": result.backward_passes, "one_forward_seconds": forward_s,
            "forward_equivalents": t.seconds / forward_s, "diverged": result.diverged,
            "params_changed": result.params_changed,
            "n_trainable": result.details.get("n_trainable"), "settings": result.settings,
            "model_fp32_mib": size, "peak_rss_after_load_mib": load_mem.rss_mib,
            "peak_rss_ratio_to_fp32": mem.rss_mib / size, "target_ratio": 3.0,
            "target_met": mem.rss_mib / size <= 3.0, "base": before, "after": after,
            "notes": result.notes, "saved": save, **mem.to_dict()}


def demo_verify_settings() -> Any:
    """The verifier settings ``make demo-real`` runs with (`DEMO_VERIFY`)."""
    from loka.verify.measure import VerifySettings

    return VerifySettings.from_settings({k: str(v) for k, v in DEMO_VERIFY.items()})


def stage_verify(device: str, save: str | None) -> dict[str, Any]:
    """``loka verify --model EDITED --holdout H --json`` on the checkpoint the loka-ft stage saved,
    as a user runs it (its manifest names the forget and retain files and the base model), in a
    child process: its wall time and peak RSS (the child's own), and its report."""
    import resource

    from loka.io.models import load_hf

    if not save:
        raise SystemExit("the verify stage needs the loka-ft stage's checkpoint (run them together)")
    _, task, model = request()
    hf, tok = load_hf(model)
    forward_s = _forward_seconds(hf, tok, [*task.forget, *task.retain])
    del hf, tok
    attacks = [a for k, v in DEMO_VERIFY.items() for a in ("--attack", f"{k}={v}")]
    cmd = [sys.executable, "-m", "loka", "verify", "--model", save, "--holdout",
           f"{REQUEST}/holdout.jsonl", "--json", *attacks]
    with Timer() as t:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = json.loads(out.stdout)
    keep = ("forget_accuracy", "retain_accuracy", "accuracy", "perplexity", "relearn_accuracy",
            "damage", "mia_auc", "verify_seconds", "user_data", "warnings")
    return {"command": " ".join(cmd[1:]), "seconds": t.seconds, "one_forward_seconds": forward_s,
            "forward_equivalents": t.seconds / forward_s, "peak_rss_mib": round(rss_mib, 1),
            "report": {k: report.get(k) for k in keep}}


def stage_measurements(device: str, save: str | None) -> dict[str, Any]:
    """Per verifier measurement on SmolLM2 with ``make demo-real``'s settings: seconds, peak RSS
    and the resident set after it (`bench.verify.breakdown`). The model under test is the base
    checkpoint loaded a second time (``save``: the loka-ft stage's edited one), the base model
    beside it, as ``loka demo`` verifies a method's model: every measurement runs in full."""
    from bench.verify import breakdown
    from loka.verify.loaded import load_model
    from loka.verify.measure import Measurements
    from loka.verify.verifier import Context

    data, _, model = request()
    settings = demo_verify_settings()
    with PeakMemory(device) as load_mem, Timer() as t_load:
        me = Measurements(load_model(save or model, name="model", device=device), data, settings)
        base = Measurements(load_model(model, name="base", device=device), data, settings)
    with Timer() as t:
        rows = breakdown(Context(me, None, base, data, settings, {}), device)
    return {"model": str(save or model), "verify_settings": settings.to_dict(),
            "load_seconds": t_load.seconds, "load_peak_rss_mib": load_mem.rss_mib,
            "seconds": t.seconds, "peak_rss_mib": max(r["peak_rss_mib"] for r in rows.values()),
            "measurements": rows, "values": _headline(me)}


def _headline(me: Any) -> dict[str, Any]:
    """A few of the measured numbers, to check a cheaper verifier measures the same."""
    from loka.verify.measurements.accuracy import accuracy_table
    from loka.verify.measurements.perplexity import perplexity_of

    return {"accuracy": accuracy_table(me), "perplexity": perplexity_of(me)}


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


def run_stage(stage: str, args: Any, save: str | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.real", "--stage-only", stage, "--threads", str(args.threads),
           "--device", args.device, *(["--save", save] if save else [])]
    log(f"stage {stage} (fresh process)")
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout)


def render(out: dict[str, Any]) -> None:
    rows = [(stage, r.get("seconds"), r.get("forward_equivalents"), r.get("peak_rss_mib"))
            for stage, r in out.items() if isinstance(r, dict) and ("seconds" in r or "error" in r)]
    per = (out.get("measurements") or {}).get("measurements") or {}
    rows += [(f"  verify: {name}", r["seconds"], None, r["peak_rss_mib"]) for name, r in per.items()]
    if rows:
        print_table("SmolLM2-135M (bench.real)", ("stage", "seconds", "forward-equivalents", "peak RSS MiB"), rows)
    cols = [f"{a}_{b}" for a, b in TABLE_SETS] + ["perplexity", "relearn_best"]
    table_rows: list[tuple[Any, ...]] = []
    for name, r in out.items():
        if not isinstance(r, dict) or "after" not in r:
            continue
        if not table_rows:
            table_rows.append(("base", *(r["base"].get(c) for c in cols)))
        table_rows.append((name, *(r["after"].get(c) for c in cols)))
    if table_rows:
        print_table("first-token accuracy on the request", ("model", *cols), table_rows)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.real", __doc__)
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated: {', '.join(STAGES)}")
    p.add_argument("--table", default=None, metavar="RESULTS", help="print the table of a demo's results.json")
    p.add_argument("--stage-only", default=None, help=argparse_hidden())
    p.add_argument("--save", default=None, help=argparse_hidden())
    args = p.parse_args(argv)
    device = setup(args)
    if args.table:
        with open(args.table, encoding="utf-8") as f:
            rows = table(json.load(f))
        print(json.dumps(rows, indent=2) if args.json else markdown(rows))
        return 0
    if args.stage_only:
        run: dict[str, Callable[[str, str | None], dict[str, Any]]] = {
            "attribution": stage_attribution, "verify": stage_verify, "measurements": stage_measurements}
        stage = run.get(args.stage_only) or partial(stage_method, args.stage_only)
        print(json.dumps(stage(device, args.save), default=float))
        return 0
    out: dict[str, Any] = {"machine": machine(device), "request": REQUEST}
    stages = [s.strip() for s in args.stages.split(",")]
    from loka.methods import names as methods

    unknown = sorted(set(stages) - set(STAGES) - set(EXTRA_STAGES) - set(methods()))
    if unknown:
        p.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES + EXTRA_STAGES)} "
                "or any method's name")
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        edited = str(Path(tmp) / "loka-ft") if "verify" in stages or (
            "measurements" in stages and "loka-ft" in stages) else None
        if edited and "loka-ft" not in stages:
            p.error("the verify stage verifies the loka-ft stage's checkpoint: run both")
        with Timer() as t:
            for stage in stages:
                try:
                    out[stage] = run_stage(stage, args, edited if stage in ("loka-ft", "verify", "measurements") else None)
                except subprocess.CalledProcessError as exc:  # one failed stage: say so, go on
                    out[stage] = {"error": f"exit status {exc.returncode} (its traceback is on stderr above)"}
                log(f"stage {stage} done: {json.dumps(out[stage], default=float)}")  # kept if stopped later
    out["total_seconds"] = t.seconds
    return finish(out, args.json, render)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
