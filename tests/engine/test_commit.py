"""Commit: the weight edit equals the preview, zeroes the activation, and undoes bit for bit."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution.components import Component, ModelShape
from loka.engine import (
    AblationPlan,
    EditSession,
    PlanError,
    UndoError,
    adapter_for,
    commit,
    hf_parameters,
    mean_activations,
    preview,
)
from tests.engine.conftest import ARCHS, assert_identical, snapshot

# The package re-exports the function `commit`, which shadows the submodule's attribute name.
commit_module = importlib.import_module("loka.engine.commit")

COMPONENTS = {
    "neuron": [Component(0, "neuron", 3), Component(1, "neuron", 77), Component(1, "neuron", 127)],
    "head": [Component(0, "head", 0), Component(1, "head", 3)],
}


def _activation(cache, c: Component) -> torch.Tensor:
    act = cache[c.hook_name]
    return act[..., c.index, :] if c.kind == "head" else act[..., c.index]


def _check_commit_matches_preview(bridge, plan, tokens) -> None:
    before = snapshot(bridge)
    with preview(bridge, plan):
        previewed = bridge(tokens)
    journal = commit(bridge, plan)
    committed, cache = bridge.run_with_cache(tokens)
    assert (committed - previewed).abs().max() <= 1e-5
    if plan.mode != "rescale":  # zero and mean disconnect the component's reads as well
        for c in plan.components:
            assert torch.count_nonzero(_activation(cache, c)) == 0, c
    journal.undo()
    assert_identical(bridge, before)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["neuron", "head"])
def test_zero_commit_equals_preview_zeroes_activations_and_undoes(arch, kind, boot, tokens):
    _check_commit_matches_preview(boot(arch), AblationPlan.zero(COMPONENTS[kind]), tokens)


@pytest.mark.parametrize("arch", ARCHS)
def test_rescale_commit_equals_preview(arch, boot, tokens):
    comps = COMPONENTS["neuron"] + COMPONENTS["head"]
    plan = AblationPlan.rescale(comps, [0.5, -1.0, 3.0, 0.0, 1.7])
    _check_commit_matches_preview(boot(arch), plan, tokens)


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2"])
def test_mean_commit_equals_preview(arch, boot, tokens):
    bridge = boot(arch)
    comps = COMPONENTS["neuron"] + COMPONENTS["head"]
    means = mean_activations(bridge, tokens, torch.ones_like(tokens), comps)
    _check_commit_matches_preview(bridge, AblationPlan.mean(comps, means), tokens)


def test_mean_mode_is_refused_for_bias_free_llama(boot, tokens):
    bridge = boot("llama")
    before = snapshot(bridge)
    plan = AblationPlan.mean([Component(0, "neuron", 3)], [[0.25]])
    with pytest.raises(PlanError, match="has none; use mode 'zero' or 'rescale'"):
        commit(bridge, plan)
    assert_identical(bridge, before)


@pytest.mark.parametrize("plan, message", [
    (AblationPlan.zero([Component(0, "neuron", 3), Component(0, "neuron", 128)]), "out of range"),
    (AblationPlan.zero([Component(0, "head", 1), Component(5, "head", 1)]), "layer 5 out of range"),
    (AblationPlan.zero([Component(0, "head", 1)], shape=ModelShape(12, 12, 3072, 64, 768)),
     "made for a model of shape"),
    (AblationPlan.mean([Component(0, "head", 1)], [[0.0] * 64]), "d_head is 16"),
])
@pytest.mark.parametrize("arch", ARCHS)
def test_plans_for_another_model_are_refused_untouched(arch, plan, message, boot):
    bridge = boot(arch)
    before = snapshot(bridge)
    with pytest.raises(PlanError, match=message):
        commit(bridge, plan)
    assert_identical(bridge, before)


def test_a_nan_factor_never_becomes_a_plan(boot):
    bridge = boot("gpt2")
    before = snapshot(bridge)
    with pytest.raises(PlanError, match="finite"):
        commit(bridge, AblationPlan.rescale([Component(0, "neuron", 1)], float("nan")))
    assert_identical(bridge, before)


def test_a_failure_mid_commit_rolls_back(boot, monkeypatch):
    bridge = boot("gpt_neox")
    before = snapshot(bridge)
    real_apply, calls = commit_module._apply, []

    def failing_apply(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(commit_module, "_apply", failing_apply)
    with pytest.raises(KeyboardInterrupt):
        commit(bridge, AblationPlan.zero(COMPONENTS["neuron"] + COMPONENTS["head"]))
    assert_identical(bridge, before)


def test_journal_counts_changes_and_refuses_unsafe_undo(boot):
    bridge = boot("gpt_neox")
    before, neuron = snapshot(bridge), Component(0, "neuron", 3)
    input_bias = adapter_for(bridge).params(neuron).reads[1]
    bias_was_set = int(input_bias.of(hf_parameters(bridge)[input_bias.param]).item() != 0)
    first = commit(bridge, AblationPlan.rescale([neuron], 2.0))
    second = commit(bridge, AblationPlan.zero([neuron]))
    assert first.n_changed() == 64  # one column of dense_4h_to_h
    # It counts what changed: that column, the input row and the input bias unless already 0.
    assert second.n_changed() == 64 + 64 + bias_was_set
    with pytest.raises(UndoError, match="undo later edits first"):
        first.undo()
    second.undo()
    first.undo()
    assert_identical(bridge, before)
    with pytest.raises(UndoError, match="already been undone"):
        first.undo()


def test_edit_session_stacks_and_undoes_everything(boot, tokens):
    bridge = boot("llama")
    before, clean = snapshot(bridge), bridge(tokens)
    session = EditSession(bridge)
    session.commit(AblationPlan.zero(COMPONENTS["head"]))
    session.commit(AblationPlan.rescale(COMPONENTS["neuron"], 0.5))
    session.commit(AblationPlan.zero(COMPONENTS["neuron"][:1]))
    assert len(session.plans) == 3 and not torch.equal(bridge(tokens), clean)
    session.undo_all()
    assert_identical(bridge, before)
    with pytest.raises(UndoError, match="nothing to undo"):
        session.undo_last()


_components = st.builds(
    Component, st.integers(0, 1), st.sampled_from(["neuron", "head"]), st.integers(0, 3)
).map(lambda c: Component(c.layer, c.kind, c.index * 37 % 128) if c.kind == "neuron" else c)


@pytest.fixture(scope="module")
def neox_bridge(random_checkpoints):
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(str(random_checkpoints["gpt_neox"]), device="cpu")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(comps=st.lists(_components, min_size=1, max_size=6, unique=True),
       mode=st.sampled_from(["zero", "mean", "rescale"]),
       seed=st.integers(0, 2**16))
def test_random_plans_commit_like_preview_and_undo_exactly(neox_bridge, comps, mode, seed):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 300, (2, 7), generator=gen)
    if mode == "zero":
        plan = AblationPlan.zero(comps)
    elif mode == "rescale":
        plan = AblationPlan.rescale(comps, (torch.randn(len(comps), generator=gen) * 2).tolist())
    else:
        plan = AblationPlan.mean(comps, mean_activations(neox_bridge, tokens, torch.ones_like(tokens), comps))
    _check_commit_matches_preview(neox_bridge, plan, tokens)
