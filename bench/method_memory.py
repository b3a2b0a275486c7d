"""Peak memory of methods on SmolLM2-135M as ``loka demo`` runs them: the base model loaded beside
(the demo keeps it for the verifier), each method from a fresh load of the model, the process's
peak resident set reset before each.

    python -m bench.method_memory [--methods gradient_ascent,grad_diff] [--threads 2]

Prints one JSON object per method as it finishes (the last line holds them all): seconds, peak
RSS (MiB), steps and changed weights. ``bench.real --stages METHOD`` measures a method without
the base model beside it.
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.method_memory", description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="gradient_ascent,grad_diff", help="comma-separated method names")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args(argv)

    import torch

    from bench import real
    from bench._common import PeakMemory, Timer, rss_mib
    from loka.io.models import load_hf
    from loka.memory import release_freed_memory
    from loka.methods import unlearn

    torch.set_num_threads(args.threads)
    _, task, model = real.request()
    base = load_hf(model)  # noqa: F841 — held, as compare_user holds the base model's measurements
    out: dict[str, object] = {"rss_with_base_mib": rss_mib()}
    for method in [m for m in args.methods.split(",") if m]:
        with PeakMemory() as mem, Timer() as t:
            result = unlearn(model, task, method=method, progress=False)
        out[method] = {"seconds": t.seconds, "peak_rss_mib": mem.rss_mib, "steps": result.steps,
                       "params_changed": result.params_changed}
        del result
        release_freed_memory()
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
