"""Attribution patching is the first-order term of the ablation effect: check the gradient."""

import torch

from attribution.ablation import Ablator
from attribution.atp import atp_effects
from attribution.components import Component
from attribution.data import tokenize_facts
from attribution.metrics import item_metric
from tests.attribution.conftest import FORGET, RETAIN, boot

SOME = [Component(0, "neuron", 5), Component(1, "neuron", 64), Component(0, "head", 1), Component(1, "head", 3)]


def _metric_along(bridge, batch, component, replacement, t):
    """Mean metric with ``component`` moved a fraction ``t`` of the way to its ablated value."""

    def hook(act, hook):
        act = act.clone()
        target = replacement.expand_as(act)[:, :, component.index]
        act[:, :, component.index] += t * (target - act[:, :, component.index])
        return act

    with torch.inference_mode(), bridge.hooks(fwd_hooks=[(component.hook_name, hook)]):
        return float(item_metric(bridge(batch.input_ids, attention_mask=batch.attention_mask), batch).mean())


def test_atp_is_minus_the_derivative_along_the_ablation_path(neox_dir):
    bridge = boot(neox_dir).to(torch.float64)  # float64 so a finite difference is a sharp check
    forget = tokenize_facts(bridge.tokenizer, *FORGET)
    retain = tokenize_facts(bridge.tokenizer, *RETAIN)
    ablator = Ablator.fit(bridge, retain, sorted({c.hook_name for c in SOME}), "mean")
    effects, forward, backward = atp_effects(bridge, forget, SOME, ablator)
    assert (forward, backward) == (1, 1)
    eps = 1e-5
    for c, e in zip(SOME, effects, strict=True):
        rep = ablator.stats[c.hook_name].to(torch.float64)
        slope = (_metric_along(bridge, forget, c, rep, eps) - _metric_along(bridge, forget, c, rep, -eps)) / (2 * eps)
        assert abs(float(e) + slope) < 1e-4 * max(1.0, abs(slope)), c


def test_graddrop_keeps_last_layer_estimates_and_ranks_all(bridge, forget):
    """Dropping the gradient through an earlier layer cannot change a last-layer gradient, so on a
    2-layer model GradDrop's estimate for layer-1 components equals plain AtP."""
    comps = [Component(layer, k, i) for layer in range(2) for k, n in (("neuron", 8), ("head", 4)) for i in range(n)]
    plain, *_ = atp_effects(bridge, forget, comps, Ablator("zero"))
    dropped, forward, backward = atp_effects(bridge, forget, comps, Ablator("zero"), graddrop=True)
    assert (forward, backward) == (1, 1)
    last = torch.tensor([c.layer == 1 for c in comps])
    torch.testing.assert_close(dropped[last], plain[last], atol=1e-6, rtol=1e-5)
    assert torch.isfinite(dropped).all() and not torch.equal(dropped[~last], plain[~last])


def test_atp_gives_the_model_no_gradients(bridge, forget):
    atp_effects(bridge, forget, SOME, Ablator("zero"))
    assert all(p.grad is None for p in bridge.parameters())
