"""Activation statistics on a hand-computed case: loops over tokens, no masking tricks."""

import torch

from attribution.actstats import activation_stats
from attribution.components import Component
from attribution.rank import rank


def test_stats_equal_a_hand_computation(bridge, retain):
    comps = [Component(1, "neuron", 7), Component(0, "head", 2)]
    stats, passes = activation_stats(bridge, retain, comps, batch_size=2)
    assert passes == 2
    with torch.inference_mode():
        _, cache = bridge.run_with_cache(retain.input_ids, attention_mask=retain.attention_mask)
    neuron, head, tokens = 0.0, 0.0, 0
    for i in range(len(retain)):
        for t in range(int(retain.attention_mask[i].sum())):
            neuron += abs(float(cache["blocks.1.mlp.hook_post"][i, t, 7]))
            head += float(cache["blocks.0.attn.hook_z"][i, t, 2].norm())
            tokens += 1
    torch.testing.assert_close(stats, torch.tensor([neuron / tokens, head / tokens]), rtol=1e-5, atol=1e-6)


def test_ranking_uses_the_selective_pruning_ratio(bridge, forget, retain):
    ranking = rank(bridge, forget, retain, method="actstats")
    assert ranking.formula == "ratio" and ranking.ablation is None
    expected = ranking.forget_scores / (ranking.retain_scores + ranking.eps)
    torch.testing.assert_close(ranking.contrast_scores, expected)
