"""Preview: the plan's effect inside the block, nothing left behind after it — even on error."""

from __future__ import annotations

import pytest
import torch

from attribution.components import Component
from loka.engine import AblationPlan, PlanError, preview
from tests.engine.conftest import assert_identical, snapshot

PLAN = AblationPlan.zero([Component(0, "neuron", 3), Component(1, "head", 2)])


def _hook_counts(bridge) -> dict[str, int]:
    return {name: len(hp.fwd_hooks) for name, hp in bridge.hook_dict.items()}


def test_preview_ablates_inside_and_leaves_nothing_behind(boot, tokens):
    bridge = boot("gpt_neox")
    before, hooks_before = snapshot(bridge), _hook_counts(bridge)
    clean = bridge(tokens)
    with preview(bridge, PLAN):
        ablated = bridge(tokens)
    assert not torch.allclose(clean, ablated)
    assert torch.equal(bridge(tokens), clean)
    assert _hook_counts(bridge) == hooks_before
    assert_identical(bridge, before)


def test_hooks_are_removed_when_the_body_raises(boot, tokens):
    bridge = boot("gpt2")
    hooks_before, clean = _hook_counts(bridge), bridge(tokens)
    with pytest.raises(RuntimeError, match="boom"), preview(bridge, PLAN):
        bridge(tokens)
        raise RuntimeError("boom")
    assert _hook_counts(bridge) == hooks_before
    assert torch.equal(bridge(tokens), clean)


def test_an_invalid_plan_is_refused_before_any_hook(boot):
    bridge = boot("llama")
    hooks_before = _hook_counts(bridge)
    with pytest.raises(PlanError, match="out of range"), \
            preview(bridge, AblationPlan.zero([Component(0, "head", 9)])):
        pass
    assert _hook_counts(bridge) == hooks_before


def test_preview_keeps_gradients_flowing(boot, tokens):
    bridge = boot("gpt_neox")
    with preview(bridge, AblationPlan.rescale([Component(0, "neuron", 3)], 0.5)):
        bridge(tokens).sum().backward()
    grads = [p.grad for p in bridge.original_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
