"""Exhaustive patching: batched == one component ablated by hand == the loop == TransformerLens."""

import pytest
import torch
from transformer_lens import patching as tl_patching

from attribution.ablation import Ablator
from attribution.components import Component, ModelShape
from attribution.data import tokenize_facts
from attribution.metrics import answer_logprob, item_metric
from attribution.patching import patch_effects, patch_effects_loop
from tests.attribution.conftest import RETAIN, boot

SOME = [Component(0, "neuron", 3), Component(1, "neuron", 127), Component(0, "head", 2), Component(1, "head", 0)]


def _by_hand(bridge, batch, component, value):
    """Metric drop with ``component`` set to ``value`` (broadcastable) by a hand-written hook."""

    def hook(act, hook):
        act = act.clone()
        act[:, :, component.index] = value
        return act

    with torch.inference_mode():
        clean = item_metric(bridge(batch.input_ids, attention_mask=batch.attention_mask), batch)
        with bridge.hooks(fwd_hooks=[(component.hook_name, hook)]):
            ablated = item_metric(bridge(batch.input_ids, attention_mask=batch.attention_mask), batch)
    return float((clean - ablated).mean())


def test_batched_zero_ablation_equals_ablating_by_hand(bridge, retain):
    effects, _ = patch_effects(bridge, retain, SOME, Ablator("zero"), progress=False)
    for c, e in zip(SOME, effects, strict=True):
        assert abs(float(e) - _by_hand(bridge, retain, c, 0.0)) < 1e-5, c


def test_batched_mean_ablation_equals_ablating_by_hand(bridge, forget, retain):
    ablator = Ablator.fit(bridge, retain, sorted({c.hook_name for c in SOME}), "mean")
    effects, _ = patch_effects(bridge, forget, SOME, ablator, rows=6, progress=False)
    for c, e in zip(SOME, effects, strict=True):
        mean = ablator.stats[c.hook_name][c.index]
        assert abs(float(e) - _by_hand(bridge, forget, c, mean)) < 1e-5, c


@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_batched_equals_loop(bridge, forget, retain, kind):
    comps = [Component(layer, k, i) for layer in range(2) for k, n in (("neuron", 2), ("head", 2)) for i in range(n)]
    ablator = Ablator.fit(bridge, retain, sorted({c.hook_name for c in comps}), kind)
    # rows=4 with 2 items: 2 replicas per pass, so a hook's units span several passes.
    batched, passes = patch_effects(bridge, forget, comps, ablator, rows=4, progress=False)
    looped, loop_passes = patch_effects_loop(bridge, forget, comps, ablator)
    torch.testing.assert_close(batched, looped, atol=1e-5, rtol=1e-4)
    assert passes < loop_passes


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_other_architectures(random_checkpoints, arch):
    bridge = boot(random_checkpoints[arch])
    batch = tokenize_facts(bridge.tokenizer, *RETAIN, max_len=bridge.cfg.n_ctx)
    effects, _ = patch_effects(bridge, batch, SOME, Ablator("zero"), progress=False)
    for c, e in zip(SOME, effects, strict=True):
        assert abs(float(e) - _by_hand(bridge, batch, c, 0.0)) < 1e-5, (arch, c)


def test_heads_match_transformer_lens_patching(bridge, forget):
    """TransformerLens's own head patching runs on a bridge (it needs only run_with_hooks and a
    cache it can index): zero ablation is patching in a "clean cache" of zeros. It passes no
    attention mask, so it is compared on one unpadded item."""
    item = forget[0:1]
    shape = ModelShape.of(bridge)
    zeros = {f"blocks.{layer}.attn.hook_z": torch.zeros(1, item.input_ids.shape[1], shape.n_heads, shape.d_head)
             for layer in range(shape.n_layers)}
    with torch.inference_mode():
        patched = tl_patching.get_act_patch_attn_head_out_all_pos(
            bridge, item.input_ids, zeros, lambda logits: answer_logprob(logits, item).mean())
        clean = answer_logprob(bridge(item.input_ids), item).mean()
    heads = [Component(layer, "head", h) for layer in range(shape.n_layers) for h in range(shape.n_heads)]
    ours, _ = patch_effects(bridge, item, heads, Ablator("zero"), progress=False)
    torch.testing.assert_close(ours, (clean - patched).flatten(), atol=1e-5, rtol=1e-4)


def test_patching_leaves_the_model_untouched(bridge, forget):
    before = {k: v.clone() for k, v in bridge.state_dict().items()}
    patch_effects(bridge, forget, SOME, Ablator("zero"), progress=False)
    assert all(torch.equal(v, bridge.state_dict()[k]) for k, v in before.items())
    assert not any(h._forward_hooks for h in bridge.hook_dict.values())


def test_resample_sees_the_same_replacements_however_items_are_batched(bridge):
    """The batched path takes items shortest first in minibatches; the loop takes them in order,
    in other minibatches: with per-item draws the effects still agree."""
    prompts = ["Mira Coltan was born in", "Q: Where was Mira Coltan born? A:", "Osric Pell works at",
               "The silver lantern drifted over the", "Osric Pell works as a"]
    answers = ["Velmora", "Velmora", "Harrow Mills", "quiet harbour", "glassblower"]
    batch = tokenize_facts(bridge.tokenizer, prompts, answers, max_len=bridge.cfg.n_ctx)
    comps = [Component(0, "neuron", 3), Component(1, "head", 1)]
    ablator = Ablator.fit(bridge, batch, sorted({c.hook_name for c in comps}), "resample", seed=3)
    batched, _ = patch_effects(bridge, batch, comps, ablator, rows=4, batch_size=2, progress=False)
    looped, _ = patch_effects_loop(bridge, batch, comps, ablator, batch_size=3)
    torch.testing.assert_close(batched, looped, atol=1e-5, rtol=1e-4)
