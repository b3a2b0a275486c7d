"""Grading localization against the planted world's answer key (`loka.workflows.localization`)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from attribution.components import Component
from loka.errors import LokaError
from loka.workflows.localization import planted_components, random_like, score_ranking
from loka.world.spec import get_spec

NEURONS = [Component(layer, "neuron", i) for layer in range(2) for i in range(50)]
PLANTED = [Component(0, "neuron", 3), Component(0, "neuron", 7), Component(1, "neuron", 0),
           Component(1, "neuron", 42)]


def _scores(top: list[Component]) -> np.ndarray:
    """Scores that put ``top`` first (in order), everything else after."""
    scores = np.zeros(len(NEURONS))
    for rank, c in enumerate(top):
        scores[NEURONS.index(c)] = 10.0 - rank
    return scores


def test_a_perfect_ranking_scores_one_and_the_floor_is_chance():
    graded = score_ranking(_scores(PLANTED), NEURONS, PLANTED)
    assert graded["k"] == 4 and graded["n_neurons"] == 100
    assert graded["precision_at_k"] == graded["recall_at_k"] == 1.0
    assert graded["average_precision"] == pytest.approx(1.0)
    assert graded["random_precision_at_k"] == pytest.approx(0.04, abs=0.02)
    assert 0.02 < graded["random_average_precision"] < 0.15
    assert sorted(graded["top_k"]) == sorted(str(c) for c in PLANTED)


def test_half_found_at_k_and_the_rest_last():
    found = PLANTED[:2] + [Component(1, "neuron", 1), Component(1, "neuron", 2)]
    scores = _scores(found)
    for c in PLANTED[2:]:
        scores[NEURONS.index(c)] = -1.0  # ranked last of all
    graded = score_ranking(scores, NEURONS, PLANTED)
    assert graded["precision_at_k"] == 0.5
    # hits at ranks 1, 2, 99, 100: AP = (1 + 1 + 3/99 + 4/100) / 4
    assert graded["average_precision"] == pytest.approx((2 + 3 / 99 + 4 / 100) / 4)


def test_heads_are_not_graded_and_nan_scores_rank_last():
    heads = [Component(0, "head", 0), Component(1, "head", 1)]
    scores = np.concatenate([_scores(PLANTED), [99.0, 99.0]])
    scores[NEURONS.index(PLANTED[0])] = np.nan
    graded = score_ranking(scores, NEURONS + heads, PLANTED)
    assert graded["n_neurons"] == 100 and graded["precision_at_k"] == 0.75


def test_random_sets_match_the_plant_layer_by_layer_and_avoid_it():
    drawn = random_like(PLANTED, 50, random.Random(0))
    assert sorted(c.layer for c in drawn) == sorted(c.layer for c in PLANTED)
    assert not set(drawn) & set(PLANTED) and len(set(drawn)) == 4


def test_the_answer_key_comes_from_the_spec():
    spec = get_spec("planted")
    planted = planted_components(spec)
    assert len(planted) == spec.plant.size and len(set(planted)) == len(planted)
    assert {c.layer for c in planted} == set(spec.plant.layers)
    with pytest.raises(LokaError, match="no planted set"):
        planted_components(get_spec("tiny"))


@pytest.mark.slow
def test_the_plant_took():
    """Builds (or loads) the planted world: zero-ablating the planted neurons brings forget
    accuracy to retrain's level with retain-eval >= 0.95 of base; random sets do not."""
    from loka.workflows.localization import plant_check
    from loka.world.build import load_world

    check = plant_check(load_world("planted", progress=False))
    # the base model learned a good part of the forget set (about 40% with this recipe, 0.47 on seed 0)
    assert check["base"]["forget_accuracy"] >= check["retrain"]["forget_accuracy"] + 0.3
    assert check["planted_ablated"]["forget_accuracy"] <= check["retrain"]["forget_accuracy"] + 0.05
    assert check["planted_ablated"]["retain_accuracy"] >= 0.95 * check["base"]["retain_accuracy"]
    assert check["took"] and check["random_does_not"]


def test_the_forget_set_score_weighs_each_part_by_its_own_scale():
    """Facts and passages are scored in different units; each part's contrast is divided by
    its spread, so a neuron only the passages need still ranks high, and the parts must rank
    the same components."""
    import torch

    from attribution.ranking import Ranking
    from loka.workflows.localization import forget_set_scores

    def ranking(forget: list[float], components: list[Component] = NEURONS[:4]) -> Ranking:
        return Ranking(components=tuple(components), forget_scores=torch.tensor(forget),
                       retain_scores=torch.zeros(len(forget)), formula="difference", weight=1.0,
                       eps=1e-6, method="patch", ablation="zero", model_id="m", forget_hash="f",
                       retain_hash="r", forget_metric="answer_logprob", retain_metric="answer_logprob",
                       seconds=0.0, forward_passes=0, backward_passes=0)

    facts = ranking([10.0, 1.0, 0.0, 0.0])        # facts need neuron 0, a little neuron 1 (large units)
    passages = ranking([0.0, 0.0, 0.02, 0.0])     # passages need neuron 2 (small units)
    raw = facts.scores("contrast") + passages.scores("contrast")
    assert set(np.argsort(-raw.numpy())[:2].tolist()) == {0, 1}  # a plain sum would miss neuron 2
    joined = forget_set_scores([facts, passages])
    assert set(np.argsort(-joined)[:2].tolist()) == {0, 2}
    assert joined[2] == pytest.approx(0.02 / np.std([0, 0, 0.02, 0]))
    flat = ranking([0.0, 0.0, 0.0, 0.0])           # a part with no spread adds nothing
    assert forget_set_scores([facts, flat]) == pytest.approx(forget_set_scores([facts]))
    with pytest.raises(ValueError, match="different components"):
        forget_set_scores([facts, ranking([1.0, 0.0, 0.0, 0.0], NEURONS[4:8])])
