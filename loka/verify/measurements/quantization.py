"""Quantization attack (Zhang et al., ICLR 2025, "Catastrophic failure of LLM unlearning via
quantization"): does rounding the weights bring the forgotten knowledge back?

An unlearning method that moves weights only a little can be undone by quantization: the small
change falls inside one quantization step and is rounded away, back to the original value. Zhang
et al. report that unlearned models kept 21 % of the forgotten knowledge in full precision and
83 % after 4-bit quantization. Here every weight matrix of the model's linear layers (not the
embeddings, the output head or the norms, which transformers and bitsandbytes keep in higher
precision too) is quantized **round-to-nearest, symmetric, per group** of ``quant_group``
consecutive input weights: ``scale = max|w| / (2^(b-1) - 1)``, ``w' = scale * round(w / scale)``.
(The paper's code used bitsandbytes' 4-bit FP4 and LLM.int8(); integer round-to-nearest is the
method its analysis uses.) Forget and retain-eval accuracy are measured on a quantized copy; the
*recovery* is the forget accuracy gained over the unquantized model. The retrain model under the
same quantization is the reference.

Example (one group of 4 weights at 4 bits: scale = 0.7 / 7 = 0.1):
    >>> quantize_rtn(torch.tensor([[0.7, -0.26, 0.04, 0.0]]), bits=4, group=4)
    tensor([[ 0.7000, -0.3000,  0.0000,  0.0000]])
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from loka.evaluate import FirstTokenEval
from loka.memory import release_freed_memory
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register


def quantize_rtn(weight: Tensor, bits: int, group: int) -> Tensor:
    """Round-to-nearest symmetric quantization of ``[out, in]`` weights, per group along ``in``."""
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    out_features, in_features = weight.shape
    pad = (-in_features) % group
    w = torch.nn.functional.pad(weight.detach().float(), (0, pad)).reshape(out_features, -1, group)
    qmax = 2 ** (bits - 1) - 1
    scale = w.abs().amax(-1, keepdim=True) / qmax
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    return q.reshape(out_features, -1)[:, :in_features].to(weight.dtype)


def quantized_copy(model: Any, bits: int, group: int) -> Any:
    """A copy of ``model`` with every linear layer's weight matrix quantized (see module doc)."""
    twin = copy.deepcopy(model)
    head = twin.get_output_embeddings() if hasattr(twin, "get_output_embeddings") else None
    with torch.no_grad():
        for module in twin.modules():
            if module is head:
                continue
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(quantize_rtn(module.weight, bits, group))
            elif type(module).__name__ == "Conv1D":  # GPT-2 stores [in, out]
                module.weight.copy_(quantize_rtn(module.weight.T, bits, group).T)
    return twin


def quantization_of(me: Any) -> dict[str, dict[str, float]] | Missing:
    data, s = me.data, me.settings
    forget, retain = data.fact_set("forget"), data.fact_set("retain_eval")
    tok, model = me.model.tokenizer, me.model.model

    def measure() -> dict[str, dict[str, float]]:
        checks = {"forget": FirstTokenEval(tok, forget)} | ({"retain_eval": FirstTokenEval(tok, retain)} if retain else {})
        before = checks["forget"](model)
        out = {}
        for bits in s.quant_bits:
            quantized = quantized_copy(model, bits, s.quant_group)
            acc = {name: check(quantized) for name, check in checks.items()}
            out[f"int{bits}"] = acc | {"recovery": acc["forget"] - before}
            del quantized  # one copy at a time (each is the model's size)
            release_freed_memory()
        return out

    return me.cached("quantization", measure)


def run(ctx: Any) -> dict[str, Any]:
    mine = quantization_of(ctx.me)
    theirs = Missing("no retrain model") if ctx.ref is None else quantization_of(ctx.ref)
    if isinstance(mine, Missing):
        return dict.fromkeys(("quantization", "quant_recovery", "quant_retrain_recovery"), mine)
    table: dict[str, dict[str, Any]] = {
        k: {**v, "retrain_forget": theirs if isinstance(theirs, Missing) else theirs[k]["forget"]}
        for k, v in mine.items()}
    return {"quantization": table, "quant_recovery": max(v["recovery"] for v in mine.values()),
            "quant_retrain_recovery": theirs if isinstance(theirs, Missing)
            else max(v["recovery"] for v in theirs.values())}


def caveats(entry: dict[str, Any], retrain: dict[str, Any] | None) -> list[str]:
    got, ref = entry.get("quant_recovery"), entry.get("quant_retrain_recovery")
    ref = ref if isinstance(ref, float) else 0.0
    if isinstance(got, float) and got - ref > 0.1:
        worst = max((entry.get("quantization") or {}).items(), key=lambda kv: kv[1].get("recovery", 0.0))
        return [f"quantizing the weights to {worst[0]} brings forget accuracy up by {got:.2f} "
                f"(to {worst[1]['forget']:.2f}; retrain: +{ref:.2f}): the edit is too small to "
                "survive rounding"]
    return []


register(Measurement(
    "quantization", keys=("quantization", "quant_recovery", "quant_retrain_recovery"), run=run,
    needs=("forget_facts",), caveats=caveats,
    columns=(Column("quantization.int4.forget", "forget after int4", "attacks", "lower"),
             Column("quant_recovery", "quantization recovery", "attacks", "lower")),
    doc="Forget accuracy after round-to-nearest int8 / int4 quantization of the weights, and "
        "how much it rose (the recovery); retrain under the same quantization is the reference.",
))
