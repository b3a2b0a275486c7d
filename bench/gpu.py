"""The GPU path, measured: attribution, loka-ft and one full verification on CUDA.

    python -m bench.gpu [--device cuda] [--models default,smollm2] [--json]

For each model — the embedded default world's base model and, when the real-model extra is
installed, SmolLM2-135M with the shipped erasure request — in one process: attribution
patching (atp) of every neuron and head, ``loka-ft`` with its defaults, and one cold full
verification (every measurement, retrain reference included where there is one). Timings are
synchronised (``torch.cuda.synchronize``); the peak allocated GPU memory and the process RSS are
reported per step. ``--device cpu`` runs the same script on the CPU (a dry run: the numbers are
CPU numbers). Without CUDA, ``--device cuda`` stops with one line, before any work.
"""

from __future__ import annotations

from typing import Any

from bench._common import PeakMemory, Timer, finish, log, machine, parser, print_table, setup, sync


def _world_job(device: str) -> dict[str, Any]:
    from loka.methods import task_from_world
    from loka.world.build import load_world

    art = load_world("default", progress=False)
    return {"model": str(art.base_dir), "task": task_from_world(art), "data": art,
            "retrain": art.retrain_dir, "base": art.base_dir}


def _smollm2_job(device: str) -> dict[str, Any] | None:
    try:
        from loka.io.real import smollm2  # the real-model extra (`pip install 'loka[real]'`)
    except ImportError:
        return None
    from pathlib import Path

    from loka.methods import UnlearnTask
    from loka.workflows.user_data import user_data

    examples = Path(__file__).resolve().parents[1] / "examples" / "smollm2"
    model = smollm2()
    data, task = user_data(model, examples / "forget.jsonl", examples / "retain.jsonl",
                           examples / "holdout.jsonl")
    return {"model": str(model), "task": UnlearnTask(task.forget, task.retain), "data": data,
            "retrain": None, "base": model}


def _step(name: str, device: str, fn: Any) -> tuple[Any, dict[str, Any]]:
    log(name)
    with PeakMemory(device) as mem, Timer() as t:
        out = fn()
        sync(device)
    return out, {"seconds": t.seconds, **mem.to_dict()}


def measure(job: dict[str, Any], device: str) -> dict[str, Any]:
    from attribution import rank, tokenize_facts
    from loka.io.models import load_bridge
    from loka.methods import unlearn
    from loka.verify.verifier import verify

    rows: dict[str, Any] = {}
    bridge = load_bridge(job["model"], device)
    forget, retain = (tokenize_facts(bridge.tokenizer, [f.prompt for f in facts], [f.answer for f in facts],
                                     max_len=bridge.cfg.n_ctx)
                      for facts in (job["task"].forget, job["task"].retain[:1024]))
    ranking, rows["attribution"] = _step("attribution (atp)", device,
                                         lambda: rank(bridge, forget, retain, "atp"))
    rows["attribution"]["components"] = len(ranking)
    result, rows["loka-ft"] = _step("loka-ft", device, lambda: unlearn(
        job["model"], job["task"], "loka-ft", device=device, progress=False))
    rows["loka-ft"]["forget_steps"] = result.steps
    _, rows["verify"] = _step("verify (cold)", device, lambda: verify(
        (result.model, result.tokenizer), job["data"], retrain=job["retrain"], base=job["base"],
        device=device))
    return rows


def run(args: Any, device: str) -> dict[str, Any]:
    jobs = {"default": _world_job, "smollm2": _smollm2_job}
    out: dict[str, Any] = {"machine": machine(device), "models": {}}
    for name in args.models.split(","):
        job = jobs[name](device)
        out["models"][name] = measure(job, device) if job else {"skipped": "the real-model extra is not installed"}
    return out


def render(out: dict[str, Any]) -> None:
    rows = [(f"{model} {step}", r["seconds"], r.get("cuda_mib"), r["peak_rss_mib"])
            for model, steps in out["models"].items() if "skipped" not in steps
            for step, r in steps.items()]
    print_table(f"GPU path on {out['machine'].get('device', '?')}",
                ("step", "seconds", "peak GPU MiB", "peak RSS MiB"), rows)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.gpu", __doc__)
    p.add_argument("--models", default="default,smollm2", help="default and/or smollm2")
    args = p.parse_args(argv)
    device = setup(args)
    return finish(run(args, device), args.json, render)


if __name__ == "__main__":
    raise SystemExit(main())
