"""The registry and the one entry point, across methods and batch types."""

from dataclasses import replace

import pytest
import scipy.stats
import torch

from attribution.components import Component, validate_components
from attribution.rank import rank
from attribution.registry import METHODS, get_method, register


def test_registry_refuses_duplicates_and_names_unknown_methods():
    assert set(METHODS) >= {"patch", "atp", "ig", "actstats"}
    with pytest.raises(ValueError, match="already registered"):
        register("atp", METHODS["atp"])
    with pytest.raises(ValueError, match="unknown attribution method 'nope'"):
        get_method("nope")


@pytest.mark.parametrize(("method", "options"), [("atp", {}), ("ig", {"steps": 4}), ("actstats", {})])
def test_every_method_ranks_every_component_with_provenance(bridge, forget, passages, method, options):
    ablation = None if method == "actstats" else "mean"
    ranking = rank(bridge, forget, passages, method=method, ablation=ablation, **options)
    n = bridge.cfg.n_layers * (bridge.cfg.d_mlp + bridge.cfg.n_heads)
    assert len(ranking) == n and ranking.method == method and ranking.ablation == ablation
    assert (ranking.forget_metric, ranking.retain_metric) == ("answer_logprob", "passage_loglik")
    assert ranking.forget_hash == forget.hash and ranking.forward_passes > 0 and ranking.seconds > 0


def test_attribution_patching_agrees_with_exhaustive_patching(bridge, forget, retain):
    exact = rank(bridge, forget, retain, method="patch", progress=False)
    approx = rank(bridge, forget, retain, method="atp")
    assert len(exact) == len(approx) == bridge.cfg.n_layers * (bridge.cfg.d_mlp + bridge.cfg.n_heads)
    assert exact.components == approx.components and exact.retain_hash == retain.hash
    assert scipy.stats.spearmanr(exact.forget_scores, approx.forget_scores).statistic > 0.9
    assert (approx.forward_passes, approx.backward_passes) == (2, 2)  # one of each per set


def test_kinds_restrict_the_components(bridge, forget, retain):
    ranking = rank(bridge, forget, retain, method="atp", kinds=("head",))
    assert {c.kind for c in ranking.components} == {"head"}


def test_clear_errors(bridge, forget, retain):
    empty = replace(forget, input_ids=forget.input_ids[:0], attention_mask=forget.attention_mask[:0],
                    prompt_last=forget.prompt_last[:0], answer_mask=forget.answer_mask[:0],
                    answer_ids=forget.answer_ids[:0], answer_lengths=forget.answer_lengths[:0],
                    prompts=(), answers=())
    with pytest.raises(ValueError, match="forget set is empty"):
        rank(bridge, empty, retain)
    with pytest.raises(TypeError, match="PassageBatch"):  # beartype's message in tests, ours without
        rank(bridge, forget, ["a retain string"])
    with pytest.raises(ValueError, match="ablates nothing"):
        rank(bridge, forget, retain, method="actstats", ablation="zero")
    with pytest.raises(ValueError, match="ablation must be one of"):
        rank(bridge, forget, retain, method="atp", ablation="shuffle")
    with pytest.raises(ValueError, match="index 128 out of range"):
        validate_components(bridge, [Component(0, "neuron", bridge.cfg.d_mlp)])
    with pytest.raises(ValueError, match="layer 2 out of range"):
        validate_components(bridge, [Component(2, "head", 0)])


def test_rank_does_not_change_the_model(bridge, forget, retain):
    before = {k: v.clone() for k, v in bridge.state_dict().items()}
    for method in ("atp", "ig"):
        rank(bridge, forget, retain, method=method, steps=2) if method == "ig" else rank(bridge, forget, retain, method=method)
    assert all(torch.equal(v, bridge.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in bridge.parameters())
