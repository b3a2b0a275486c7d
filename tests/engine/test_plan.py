"""AblationPlan: validation with clear messages, exact JSON round trips, masked means."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attribution.components import Component, ModelShape
from loka.engine import AblationPlan, PlanError, Provenance, mean_activations

N0, N1, H0 = Component(0, "neuron", 3), Component(1, "neuron", 5), Component(0, "head", 2)
SHAPE = ModelShape(n_layers=2, n_heads=4, d_mlp=128, d_head=16, d_model=64)


@pytest.mark.parametrize("build, message", [
    (lambda: AblationPlan.zero([]), "at least one component"),
    (lambda: AblationPlan.zero([N0, N1, N0]), "appears twice"),
    (lambda: AblationPlan.rescale([N0], math.nan), "finite"),
    (lambda: AblationPlan.rescale([N0, N1], [1.0, math.inf]), "finite"),
    (lambda: AblationPlan.rescale([N0, N1], [1.0]), "1 factors for 2 components"),
    (lambda: AblationPlan((N0,), "mean"), "means are required"),
    (lambda: AblationPlan((N0,), "zero", factor=0.5), "factor is required for mode 'rescale' and only"),
    (lambda: AblationPlan((N0,), "rescale"), "factor is required"),
    (lambda: AblationPlan.mean([N0], [[1.0, 2.0]]), "one number"),
    (lambda: AblationPlan.mean([N0, H0], [[1.0]]), "1 means for 2 components"),
    (lambda: AblationPlan.mean([N0], [[math.nan]]), "finite"),
    (lambda: Provenance(extra={"x": object()}), "plain JSON"),
])
def test_invalid_plans_are_refused_with_a_clear_message(build, message):
    with pytest.raises(PlanError, match=message):
        build()


def test_json_round_trip_is_exact_for_float32_means():
    means = torch.randn(16, dtype=torch.float32)
    plan = AblationPlan.mean([N1, H0], [[0.1], means.tolist()], shape=SHAPE,
                             provenance=Provenance("atp", "pythia", "abc123", {"k": [1, 2]}))
    again = AblationPlan.from_json(plan.to_json())
    assert again == plan
    assert torch.equal(torch.tensor(again.means[1], dtype=torch.float32), means)
    per_component = AblationPlan.rescale([N0, N1], [0.5, 2.0])
    assert AblationPlan.from_json(per_component.to_json()).factors() == (0.5, 2.0)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: "not json", "valid JSON"),
    (lambda d: [], "plan must be a dict"),
    (lambda d: {**d, "format": 99}, "format"),
    (lambda d: {**d, "surprise": 1}, "unknown keys"),
    (lambda d: {**d, "components": ["L0.X3"]}, "cannot parse component"),
    (lambda d: {**d, "components": "L0.N3"}, "components must be a list"),
    (lambda d: {**d, "mode": "erase"}, "mode must be one of"),
    (lambda d: {**d, "mode": "rescale", "factor": "2"}, "factor must be a number"),
    (lambda d: {**d, "mode": "rescale", "factor": True}, "factor must be a number"),
    (lambda d: {**d, "mode": "rescale", "factor": float("nan")}, "finite"),
    (lambda d: {**d, "shape": {"n_layers": 2}}, "shape lacks"),
    (lambda d: {**d, "shape": {**vars(SHAPE), "d_mlp": 1.5}}, "shape.d_mlp must be a int"),
    (lambda d: {**d, "provenance": {"ranking_method": 3}}, "ranking_method must be a str"),
    (lambda d: {**d, "provenance": {"who": "me"}}, "unknown provenance keys"),
    (lambda d: {**d, "provenance": {"extra": [1]}}, "extra must be a dict"),
])
def test_malformed_json_is_refused_with_a_clear_message(mutate, message):
    good = AblationPlan.zero([N0, H0], shape=SHAPE).to_dict()
    bad = mutate(good)
    with pytest.raises(PlanError, match=message):
        AblationPlan.from_json(bad if isinstance(bad, str) else json.dumps(bad))


@pytest.mark.parametrize("plan, message", [
    (AblationPlan.zero([Component(2, "neuron", 0)]), "layer 2 out of range"),
    (AblationPlan.zero([Component(0, "neuron", 128)]), "index 128 out of range"),
    (AblationPlan.zero([Component(0, "head", 4)]), "index 4 out of range"),
    (AblationPlan.zero([N0], shape=ModelShape(4, 4, 128, 16, 64)), "made for a model of shape"),
    (AblationPlan.mean([H0], [[0.0] * 8]), "d_head is 16"),
])
def test_plans_that_do_not_fit_the_model_shape_are_refused(plan, message):
    with pytest.raises(PlanError, match=message):
        plan.check_fits(SHAPE)


def test_mean_activations_ignore_padding(boot, tokens):
    bridge = boot("gpt_neox")
    mask = torch.ones_like(tokens)
    mask[0, 5:] = 0  # right padding: a causal model's real positions do not see it
    padded = tokens.clone()
    padded[0, 5:] = 0
    comps = [N1, H0]
    means = mean_activations(bridge, padded, mask, comps)
    _, cache = bridge.run_with_cache(tokens)
    real = mask.bool()
    expected_n = cache[N1.hook_name][real][:, N1.index].double().mean()
    expected_h = cache[H0.hook_name][real][:, H0.index].double().mean(0)
    assert means[0] == pytest.approx((float(expected_n),), abs=1e-6)
    assert means[1] == pytest.approx(tuple(expected_h.tolist()), abs=1e-6)
    assert len(means[1]) == SHAPE.d_head
    one_by_one = mean_activations(bridge, padded, mask, comps, batch_size=1)
    for a, b in zip(one_by_one, means, strict=True):
        assert a == pytest.approx(b, abs=1e-6)  # float32 kernels differ by batch size
