"""Integrated gradients: completeness, sum of attributions = metric(clean) - metric(baseline)."""

import torch

from attribution.ablation import Ablator
from attribution.components import Component, ModelShape
from attribution.data import tokenize_facts
from attribution.ig import ig_effects
from attribution.metrics import item_metric
from tests.attribution.conftest import FORGET, boot


def _ablate_whole_hook(bridge, batch, hook_name):
    def hook(act, hook):
        return torch.zeros_like(act)

    with torch.inference_mode():
        clean = item_metric(bridge(batch.input_ids, attention_mask=batch.attention_mask), batch)
        with bridge.hooks(fwd_hooks=[(hook_name, hook)]):
            ablated = item_metric(bridge(batch.input_ids, attention_mask=batch.attention_mask), batch)
    return float((clean - ablated).mean())


def test_completeness_for_a_layer_of_neurons_and_a_layer_of_heads(neox_dir):
    bridge = boot(neox_dir).to(torch.float64)
    forget = tokenize_facts(bridge.tokenizer, *FORGET)
    shape = ModelShape.of(bridge)
    for kind, layer in (("neuron", 0), ("head", 1)):
        comps = [Component(layer, kind, i) for i in range(shape.size(kind))]
        effects, forward, backward = ig_effects(bridge, forget, comps, Ablator("zero"), steps=32)
        assert forward == backward == 1  # one hook: all 32 steps run as replicas of one pass
        exact = _ablate_whole_hook(bridge, forget, comps[0].hook_name)
        assert abs(float(effects.sum()) - exact) < 5e-3 * max(1.0, abs(exact)), (kind, exact)
