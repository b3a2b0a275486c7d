"""The adapters name the right slices: the bridge's hooks really are what those slices read."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from attribution.components import Component, ModelShape
from loka.engine import UnsupportedArchitectureError, adapter_for, hf_parameters, hf_state_dict
from tests.engine.conftest import ARCHS


def _module_of(model: nn.Module, param: str) -> nn.Module:
    return model.get_submodule(param.rsplit(".", 1)[0])


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["head", "neuron"])
def test_hook_is_the_input_of_the_write_projection(arch, kind, boot, random_checkpoints, tokens):
    """hook_z / hook_post equal what the plain HF model feeds its output projection."""
    bridge = boot(arch)
    shape = ModelShape.of(bridge)
    plain = AutoModelForCausalLM.from_pretrained(random_checkpoints[arch]).eval()
    adapter = adapter_for(plain)
    seen: dict[int, torch.Tensor] = {}
    handles = []
    for layer in range(shape.n_layers):
        write = adapter.params(Component(layer, kind, 0)).write
        handles.append(_module_of(plain, write.param).register_forward_pre_hook(
            lambda mod, args, layer=layer: seen.__setitem__(layer, args[0].detach())))
    try:
        with torch.no_grad():
            plain(tokens)
    finally:
        for h in handles:
            h.remove()
    _, cache = bridge.run_with_cache(tokens)
    for layer in range(shape.n_layers):
        hooked = cache[Component(layer, kind, 0).hook_name]
        expected = seen[layer].reshape(hooked.shape)  # [.. n_heads*d_head] -> [.. n_heads d_head]
        assert (hooked - expected).abs().max() <= 1e-5, (arch, kind, layer)


def test_unsupported_architecture_names_the_supported_ones():
    model = nn.Linear(2, 2)
    model.config = type("Cfg", (), {"model_type": "bert"})()
    with pytest.raises(UnsupportedArchitectureError, match="gpt2, gpt_neox, llama"):
        adapter_for(model)


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_names_resolve_the_same_tensors_through_a_bridge(arch, boot, random_checkpoints):
    bridge = boot(arch)
    plain = AutoModelForCausalLM.from_pretrained(random_checkpoints[arch])
    wrapped = hf_parameters(bridge)
    for name, param in plain.named_parameters():
        assert torch.equal(wrapped[name], param), name
    assert hf_state_dict(bridge).keys() == plain.state_dict().keys()


def test_every_slice_fits_its_parameter(boot):
    for arch in ARCHS:
        bridge = boot(arch)
        params, adapter = hf_parameters(bridge), adapter_for(bridge)
        for c in ModelShape.of(bridge).components():
            p = adapter.params(c)
            for s in (p.write, *p.reads):
                assert s.param in params or not s.required, (arch, c, s)
                if s.param in params:
                    assert s.stop <= params[s.param].shape[s.dim], (arch, c, s)
