"""Which parameter slices a component owns, per architecture — the one place weight paths are spelled.

A component *writes* to the residual stream through a slice of its layer's output projection and
*reads* through slices of the projections that produce its activation. Zeroing the write removes
its effect; zeroing the reads as well makes the activation itself exactly zero, so later analysis
sees the component as dead. Paths are Hugging Face parameter names (``gpt_neox.layers.0.mlp...``);
`hf_parameters` resolves them both on a plain HF model and on one wrapped by a TransformerBridge.

>>> adapter = adapter_for(model)                      # doctest: +SKIP
>>> adapter.params(Component(0, "neuron", 7)).write   # doctest: +SKIP
ParamSlice(param='gpt_neox.layers.0.mlp.dense_4h_to_h.weight', dim=1, start=7, stop=8, ...)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from attribution.components import Component
from loka.engine.errors import UnsupportedArchitectureError

# A TransformerBridge wraps every HF submodule it adapts in place, inserting this segment into
# parameter names; stripping it recovers the HF name that save_pretrained and from_pretrained use.
_BRIDGE_SEGMENT = "._original_component"


@dataclass(frozen=True)
class ParamSlice:
    """Entries ``start:stop`` along axis ``dim`` of the HF parameter named ``param``.

    ``required=False`` marks a slice that may be absent (an optional bias). ``bridge_copy`` marks
    a TransformerBridge's private copy of a fused HF weight: present only while a bridge wraps the
    model, edited so the live bridge agrees with the HF weights, never saved or counted.
    """

    param: str
    dim: int
    start: int
    stop: int
    required: bool = True
    bridge_copy: bool = False

    def of(self, tensor: Tensor) -> Tensor:
        """The slice as a view of ``tensor``: writing to it writes the parameter."""
        return tensor.narrow(self.dim, self.start, self.stop - self.start)


@dataclass(frozen=True)
class ComponentParams:
    """The parameters one component owns: its write slice, the write's bias, its read slices."""

    write: ParamSlice
    bias: str | None
    reads: tuple[ParamSlice, ...]


class Adapter:
    """Weight layout of one architecture family; subclasses spell the paths."""

    name: str = ""
    model_types: tuple[str, ...] = ()

    def __init__(self, config: Any) -> None:
        self.n_heads = int(config.num_attention_heads)
        self.d_head = int(getattr(config, "head_dim", None) or config.hidden_size // self.n_heads)
        self.n_kv_heads = int(getattr(config, "num_key_value_heads", None) or self.n_heads)

    def params(self, component: Component) -> ComponentParams:
        if component.kind == "neuron":
            return self.neuron(component.layer, component.index)
        return self.head(component.layer, component.index)

    def neuron(self, layer: int, n: int) -> ComponentParams:
        raise NotImplementedError

    def head(self, layer: int, h: int) -> ComponentParams:
        raise NotImplementedError

    def head_range(self, h: int) -> tuple[int, int]:
        return h * self.d_head, (h + 1) * self.d_head


class GPTNeoXAdapter(Adapter):
    """GPT-NeoX / Pythia: ``nn.Linear`` weights are ``[out, in]``; QKV fused per head."""

    name = "gpt_neox"
    model_types = ("gpt_neox",)

    def neuron(self, layer: int, n: int) -> ComponentParams:
        p = f"gpt_neox.layers.{layer}.mlp"
        return ComponentParams(
            write=ParamSlice(f"{p}.dense_4h_to_h.weight", 1, n, n + 1),
            bias=f"{p}.dense_4h_to_h.bias",
            reads=(ParamSlice(f"{p}.dense_h_to_4h.weight", 0, n, n + 1),
                   ParamSlice(f"{p}.dense_h_to_4h.bias", 0, n, n + 1, required=False)),
        )

    def head(self, layer: int, h: int) -> ComponentParams:
        p = f"gpt_neox.layers.{layer}.attention"
        start, stop = self.head_range(h)
        # HF fuses QKV as [n_heads, 3, d_head] rows; head h's values are the last third of its block.
        v0 = h * 3 * self.d_head + 2 * self.d_head
        v1 = v0 + self.d_head
        return ComponentParams(
            write=ParamSlice(f"{p}.dense.weight", 1, start, stop),
            bias=f"{p}.dense.bias",
            reads=(ParamSlice(f"{p}.query_key_value.weight", 0, v0, v1),
                   ParamSlice(f"{p}.query_key_value.bias", 0, v0, v1, required=False),
                   # The bridge splits the fused QKV into private copies at boot and computes
                   # with those, so the copy must be edited too for the live bridge to agree.
                   ParamSlice(f"{p}.v.weight", 0, start, stop, False, bridge_copy=True),
                   ParamSlice(f"{p}.v.bias", 0, start, stop, False, bridge_copy=True)),
        )


class GPT2Adapter(Adapter):
    """GPT-2: ``Conv1D`` weights are ``[in, out]``, the transpose of ``nn.Linear``."""

    name = "gpt2"
    model_types = ("gpt2",)

    def neuron(self, layer: int, n: int) -> ComponentParams:
        p = f"transformer.h.{layer}.mlp"
        return ComponentParams(
            write=ParamSlice(f"{p}.c_proj.weight", 0, n, n + 1),
            bias=f"{p}.c_proj.bias",
            reads=(ParamSlice(f"{p}.c_fc.weight", 1, n, n + 1),
                   ParamSlice(f"{p}.c_fc.bias", 0, n, n + 1, required=False)),
        )

    def head(self, layer: int, h: int) -> ComponentParams:
        p = f"transformer.h.{layer}.attn"
        start, stop = self.head_range(h)
        v_offset = 2 * self.n_heads * self.d_head  # c_attn columns are [Q | K | V]
        return ComponentParams(
            write=ParamSlice(f"{p}.c_proj.weight", 0, start, stop),
            bias=f"{p}.c_proj.bias",
            reads=(ParamSlice(f"{p}.c_attn.weight", 1, v_offset + start, v_offset + stop),
                   ParamSlice(f"{p}.c_attn.bias", 0, v_offset + start, v_offset + stop,
                              required=False)),
        )


class LlamaAdapter(Adapter):
    """Llama-style: gated MLP ``down(act(gate(x)) * up(x))``, no output biases by default."""

    name = "llama"
    model_types = ("llama",)

    def neuron(self, layer: int, n: int) -> ComponentParams:
        p = f"model.layers.{layer}.mlp"
        return ComponentParams(
            write=ParamSlice(f"{p}.down_proj.weight", 1, n, n + 1),
            bias=f"{p}.down_proj.bias",  # exists only with config.mlp_bias
            reads=tuple(ParamSlice(f"{p}.{proj}.{kind}", 0, n, n + 1, required=kind == "weight")
                        for proj in ("up_proj", "gate_proj") for kind in ("weight", "bias")),
        )

    def head(self, layer: int, h: int) -> ComponentParams:
        p = f"model.layers.{layer}.self_attn"
        start, stop = self.head_range(h)
        reads: tuple[ParamSlice, ...] = ()
        # With grouped-query attention a value head serves several query heads; editing it would
        # ablate its neighbours too, so only the write slice is edited then.
        if self.n_kv_heads == self.n_heads:
            reads = (ParamSlice(f"{p}.v_proj.weight", 0, start, stop),
                     ParamSlice(f"{p}.v_proj.bias", 0, start, stop, required=False))
        return ComponentParams(
            write=ParamSlice(f"{p}.o_proj.weight", 1, start, stop),
            bias=f"{p}.o_proj.bias",  # exists only with config.attention_bias
            reads=reads,
        )


ADAPTERS: dict[str, Callable[[Any], Adapter]] = {}
for _cls in (GPTNeoXAdapter, GPT2Adapter, LlamaAdapter):
    for _model_type in _cls.model_types:
        ADAPTERS[_model_type] = _cls


def hf_model(model_or_bridge: nn.Module) -> nn.Module:
    """The Hugging Face model: ``bridge.original_model`` for a bridge, else the model itself."""
    return getattr(model_or_bridge, "original_model", model_or_bridge)


def adapter_for(model_or_bridge: nn.Module) -> Adapter:
    """The adapter for this model's architecture, detected from its HF config's ``model_type``."""
    config = getattr(hf_model(model_or_bridge), "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in ADAPTERS:
        raise UnsupportedArchitectureError(
            f"architecture {model_type!r} ({type(hf_model(model_or_bridge)).__name__}) is not "
            f"supported by the ablation engine; supported: {', '.join(sorted(ADAPTERS))}"
        )
    return ADAPTERS[model_type](config)


def hf_parameters(model_or_bridge: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter under its HF name, whether or not a TransformerBridge wraps the model.

    A bridge exposes one tensor under several paths; they are aliases of the same storage, so the
    first path seen for each HF name is as good as any other.
    """
    out: dict[str, nn.Parameter] = {}
    for name, param in hf_model(model_or_bridge).named_parameters(remove_duplicate=False):
        out.setdefault(name.replace(_BRIDGE_SEGMENT, ""), param)
    return out


def hf_state_dict(model_or_bridge: nn.Module) -> dict[str, Tensor]:
    """The state dict a plain HF model of this config would have, read from a possibly wrapped one.

    Keys come from an instance built on the meta device (no memory), so the bridge's own aliases
    (``blocks.0.attn.q`` ...) are left out and the result loads with ``from_pretrained``.
    """
    from transformers import AutoModelForCausalLM

    model = hf_model(model_or_bridge)
    with torch.device("meta"):
        reference = AutoModelForCausalLM.from_config(model.config)
    tensors: dict[str, Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensors.setdefault(name.replace(_BRIDGE_SEGMENT, ""), tensor)
    missing = [k for k in reference.state_dict() if k not in tensors]
    if missing:
        raise UnsupportedArchitectureError(f"cannot find HF parameters {missing[:5]} in the model")
    return {k: tensors[k] for k in reference.state_dict()}
