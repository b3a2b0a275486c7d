"""AdamW on SmolLM2-135M's parameters: torch's default loop vs its fused kernel, side by side.

    python -m bench.optimizer [--threads 2] [--steps 4] [--json]

`loka.memory.adamw` runs the fused kernel for a model above `loka.memory.LARGE_ABOVE` parameters
(every optimising method's loop and the verifier's relearning attacks). Here both variants take
the same seeded gradients from the same weights, one after the other in this process: seconds
per step (the first step, which allocates the two moments, reported apart) and the largest
difference between the weights the two reach (float rounding only, ~1e-7).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench._common import finish, log, machine, parser, print_table, setup


def run(steps: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from loka.io.real import smollm2

    path = smollm2(progress=True)
    start = {k: v.detach().clone() for k, v in AutoModelForCausalLM.from_pretrained(path).named_parameters()}
    generator = torch.Generator().manual_seed(0)
    grads = [{k: torch.randn(v.shape, generator=generator) * 1e-3 for k, v in start.items()} for _ in range(steps)]
    out: dict[str, Any] = {"parameters": sum(v.numel() for v in start.values()), "steps": steps, "variants": {}}
    ends = {}
    for name, options in (("default loop (worlds)", {}), ("foreach", {"foreach": True}),
                          ("fused (large models)", {"fused": True})):
        params = {k: torch.nn.Parameter(v.clone()) for k, v in start.items()}
        opt = torch.optim.AdamW(params.values(), lr=3e-4, **options)
        seconds = []
        for g in grads:
            for k, p in params.items():
                p.grad = g[k].clone()
            t = time.perf_counter()
            opt.step()
            seconds.append(time.perf_counter() - t)
        ends[name] = params
        out["variants"][name] = {"first_step_s": round(seconds[0], 3),
                                 "step_s": round(statistics.median(seconds[1:]), 3)}
        log(f"{name}: first step {seconds[0]:.3f} s, then {statistics.median(seconds[1:]):.3f} s")
        del opt
    plain, fused = ends["default loop (worlds)"], ends["fused (large models)"]
    out["max_abs_difference_fused_vs_default"] = max(float((plain[k] - fused[k]).abs().max()) for k in plain)
    out["foreach_equals_default"] = all(torch.equal(plain[k], ends["foreach"][k]) for k in plain)
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.optimizer", __doc__ or "")
    p.add_argument("--steps", type=int, default=4, help="AdamW steps per variant (default 4)")
    args = p.parse_args(argv)
    device = setup(args)
    out = {"machine": machine(device)} | run(max(2, args.steps))

    def render(o: dict[str, Any]) -> None:
        print_table("AdamW on SmolLM2-135M", ["variant", "first step s", "step s"],
                    [[k, v["first_step_s"], v["step_s"]] for k, v in o["variants"].items()])
        print(f"largest |fused - default| after {o['steps']} steps: {o['max_abs_difference_fused_vs_default']:.3g}")

    return finish(out, args.json, render)


if __name__ == "__main__":
    raise SystemExit(main())
