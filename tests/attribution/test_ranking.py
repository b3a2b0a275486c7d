import json

import pytest
import torch

from attribution.components import Component
from attribution.ranking import Ranking

COMPS = (Component(0, "neuron", 0), Component(0, "neuron", 1), Component(1, "head", 0), Component(1, "head", 1))


def make(**overrides) -> Ranking:
    fields = dict(
        components=COMPS, forget_scores=torch.tensor([3.0, 1.0, 2.0, -1.0]),
        retain_scores=torch.tensor([2.5, -4.0, 0.0, 0.0]), formula="difference", weight=1.0,
        method="patch", ablation="zero", model_id="tiny", forget_hash="f" * 64, retain_hash="r" * 64,
        forget_metric="answer_logprob", retain_metric="answer_logprob", seconds=0.5,
        forward_passes=10, backward_passes=0, options={"rows": 512},
    )
    return Ranking(**(fields | overrides))


def test_difference_contrast_charges_only_retain_damage():
    ranking = make()
    torch.testing.assert_close(ranking.contrast_scores, torch.tensor([0.5, 1.0, 2.0, -1.0]))
    assert ranking.top(2) == [COMPS[2], COMPS[1]]
    assert ranking.top(10, kinds=("neuron",)) == [COMPS[1], COMPS[0]]
    assert ranking.rerank(0.0).top(1) == [COMPS[0]]  # weight 0: forget effect alone
    assert ranking.rerank(0.0).forget_scores is ranking.forget_scores


def test_ratio_contrast():
    ranking = make(formula="ratio", forget_scores=torch.tensor([1.0, 2.0, 3.0, 4.0]),
                   retain_scores=torch.tensor([1.0, 1.0, 6.0, 1.0]), eps=0.0)
    torch.testing.assert_close(ranking.contrast_scores, torch.tensor([1.0, 2.0, 0.5, 4.0]))


def test_grid_lays_out_layer_by_index():
    grid = make().grid("head", "forget")
    assert grid.shape == (2, 2) and grid[1].tolist() == [2.0, -1.0] and grid[0].isnan().all()


def test_json_round_trip(tmp_path):
    ranking = make()
    path = tmp_path / "r.json"
    path.write_text(ranking.to_json())
    back = Ranking.load(path)
    assert Ranking.from_json(ranking.to_json()).components == ranking.components
    assert back.components == ranking.components and back.summary() == ranking.summary()
    for name in ("forget_scores", "retain_scores", "contrast_scores"):
        torch.testing.assert_close(getattr(back, name), getattr(ranking, name))


@pytest.mark.parametrize(
    ("edit", "message"),
    [(lambda d: "{not json", "not valid JSON"),
     (lambda d: d | {"format": "other"}, "not a ranking file"),
     (lambda d: d | {"version": 99}, "version 99"),
     (lambda d: {k: v for k, v in d.items() if k != "retain_scores"}, "lacks .*retain_scores"),
     (lambda d: d | {"components": ["L0.N0", "L0.N1", "L1.H0", "head 3"]}, "cannot parse component"),
     (lambda d: d | {"forget_scores": [1.0]}, "forget_scores has 1 entries for 4 components"),
     (lambda d: d | {"forget_scores": [1.0, 2.0, "x", 4.0]}, "malformed"),
     (lambda d: d | {"weight": -1}, "weight must be"),
     (lambda d: d | {"formula": "product"}, "malformed")],
)
def test_malformed_files_name_the_problem(tmp_path, edit, message):
    path = tmp_path / "r.json"
    data = edit(make().to_dict())
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(ValueError, match=message):
        Ranking.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ranking file"):
        Ranking.load(tmp_path / "absent.json")


def test_invalid_rankings_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        make(forget_scores=torch.tensor([1.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(ValueError, match="duplicates"):
        make(components=COMPS[:3] + COMPS[:1])
