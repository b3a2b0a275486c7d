"""Seed 001's experiment on a real model, through LOKA: gradient ascent on one Frankenstein line.

    python scripts/seed001_smollm2.py [--json]

The seed ran pure gradient ascent (AdamW, lr 1e-4, 25 steps, the loss negated) on Pythia-160m
with the sentence below and watched the loss reach ``nan`` by step 5; its model then answered
"I looked upon the hideous" with ``<|endoftext|>``. Here the same recipe runs on SmolLM2-135M
(the `loka models get smollm2-135m` fixture) as ``unlearn(..., "gradient_ascent", alpha=1,
lr=1e-4, steps=25)``: AdamW with torch's default weight decay 0.01 as in the seed, no retain set
(so no retain budget), no forget target. What to look at: the forget NLL per step, where the
divergence guard trips (a non-finite loss, or a forget NLL above ``max_forget_nll`` = 50 nats
per token: the model has collapsed) and that it restores the last good weights, so the model
that comes back is finite; then what the model says before and after.
"""

from __future__ import annotations

import argparse
import json

SENTENCE = "I looked upon the hideous monster, the wretch I had created."
PROMPT = "I looked upon the hideous"


def complete(model, tokenizer, prompt: str, tokens: int = 12) -> str:
    import torch

    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:])


def main(argv: list[str] | None = None) -> int:
    import torch

    from loka.io.models import load_hf
    from loka.io.real import smollm2
    from loka.methods import UnlearnTask, unlearn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, tokenizer = load_hf(smollm2(progress=True))
    before = complete(model, tokenizer, PROMPT)
    task = UnlearnTask(forget=(), retain=(), forget_passages=(SENTENCE,))
    result = unlearn((model, tokenizer), task, "gradient_ascent", progress=False, alpha=1.0,
                     lr=1e-4, steps=25, batch_size=1, forget_target=None)
    after = complete(model, tokenizer, PROMPT)
    out = {"before": before, "after": after, "steps": result.steps, "diverged": result.diverged,
           "diverged_step": result.diverged_step, "notes": result.notes,
           "finite": result.non_finite is None,
           "forget_nll": [round(e["forget_nll"], 3) for e in result.log if "forget_nll" in e]}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"before: {PROMPT!r} -> {before!r}")
        for step, nll in enumerate(out["forget_nll"], start=1):
            print(f"step {step:2d}: forget NLL {nll:8.3f} nats/token")
        print("; ".join(result.notes) or "no note")
        print(f"after ({'diverged at step ' + str(result.diverged_step) if result.diverged else 'no divergence'}, "
              f"weights {'finite' if out['finite'] else 'NOT finite'}): {PROMPT!r} -> {after!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
