"""Gradient routing (`loka.world.routing`): forget rows train the planted neurons' slices and
nothing else; retain rows train everything else; the model reassembles exactly."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM

from loka.world.routing import RoutedModel, lm_loss, planted_slices, routed_losses
from loka.world.spec import PRESETS, PlantSpec, get_spec

PLANTED = {0: (1, 5), 1: (0, 3, 7)}


@pytest.fixture()
def model(neox_dir):
    return AutoModelForCausalLM.from_pretrained(neox_dir)


def _grads(routed: RoutedModel, view: str) -> tuple[dict, dict]:
    ids = torch.randint(3, 300, (2, 12))
    for p in (*routed.shared.values(), *routed.planted.values()):
        p.grad = None
    lm_loss(routed.forward(ids, view), ids, torch.ones_like(ids, dtype=torch.bool)).backward()
    nonzero = lambda d: {n for n, p in d.items() if p.grad is not None and p.grad.abs().sum() > 0}  # noqa: E731
    return nonzero(routed.shared), nonzero(routed.planted)


def test_forget_rows_reach_the_planted_slices_only(model):
    routed = RoutedModel(model, PLANTED)
    shared, planted = _grads(routed, "forget")
    assert shared == set()
    # input rows, input biases and output columns of both planted layers
    assert planted == set(routed.planted) and len(planted) == 6


def test_retain_rows_never_train_the_planted_slices(model):
    routed = RoutedModel(model, PLANTED)
    shared, planted = _grads(routed, "retain")
    assert planted == set()
    assert "gpt_neox.embed_in.weight" in shared
    assert any(".attention." in n for n in shared) and any("dense_4h_to_h" in n for n in shared)


def test_retain_dropout_zeroes_the_planted_outputs(model):
    routed = RoutedModel(model, PLANTED)
    params = routed.params("retain_dropout")
    w = params["gpt_neox.layers.1.mlp.dense_4h_to_h.weight"]
    assert w[:, [0, 3, 7]].abs().sum() == 0 and w[:, 1].abs().sum() > 0
    assert routed.params("retain")["gpt_neox.layers.1.mlp.dense_4h_to_h.weight"][:, 0].abs().sum() > 0


def test_split_and_write_back_give_the_same_model(model):
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(3, 300, (2, 10))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    routed = RoutedModel(model, PLANTED)
    with torch.no_grad():
        assert torch.equal(routed.forward(ids, "retain"), expected)
        routed.planted["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"].add_(1.0)  # a planted update
    routed.write_back()
    after = dict(model.named_parameters())
    w0 = "gpt_neox.layers.0.mlp.dense_4h_to_h.weight"
    assert torch.equal(after[w0][:, [1, 5]], before[w0][:, [1, 5]] + 1)
    keep = [i for i in range(after[w0].shape[1]) if i not in (1, 5)]
    assert torch.equal(after[w0][:, keep], before[w0][:, keep])
    assert all(torch.equal(after[n], before[n]) for n in before if n != w0)
    assert all(p.requires_grad for p in model.parameters())


def test_planted_slices_follow_the_adapter(model):
    slices = planted_slices(model, PLANTED)
    dim, idx = slices["gpt_neox.layers.1.mlp.dense_h_to_4h.weight"]
    assert dim == 0 and idx.tolist() == [0, 3, 7]
    assert slices["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"][0] == 1


def test_the_planted_preset_is_its_own_answer_key():
    spec = get_spec("planted")
    assert spec.plant is not None and spec.plant.size == spec.plant.per_layer * len(spec.plant.layers)
    assert json.loads(json.dumps(spec.to_dict()))["plant"]["neurons"] == [list(n) for n in spec.plant.neurons]
    assert "plant" not in PRESETS["tiny"].to_dict()  # unplanted worlds keep their cache keys
    assert PRESETS["tiny"].key() == "442167f931cd" and PRESETS["default"].key() == "0a0b6f5558b0"
    with pytest.raises(ValueError, match="outside the model"):
        replace(PRESETS["tiny"], plant=PlantSpec.draw(layers=(9,), per_layer=2, d_mlp=8, seed=0))


def test_forget_only_tokens_train_their_embedding_rows_with_the_plant(model):
    routed = RoutedModel(model, PLANTED, forget_tokens=[5, 9])
    embed = "gpt_neox.embed_in.weight"
    assert routed.planted[embed].shape[0] == 2 and routed.shared[embed].shape[0] == model.config.vocab_size - 2
    ids = torch.tensor([[5, 9, 40, 41, 5, 42]])
    lm_loss(routed.forward(ids, "forget"), ids, torch.ones_like(ids, dtype=torch.bool)).backward()
    assert routed.planted[embed].grad.abs().sum(1).gt(0).all()
    assert routed.shared[embed].grad is None


def test_gate_mode_trains_the_planted_input_side_on_retain_rows_and_nothing_shared(model):
    routed = RoutedModel(model, PLANTED, retain_trains="gate")
    shared, planted = _grads(routed, "retain")
    assert shared == set()
    assert planted and all("dense_h_to_4h" in n for n in planted)  # reads only, never the writes
    shared, planted = _grads(routed, "retain_dropout")
    assert planted == set() and "gpt_neox.embed_in.weight" in shared


def test_input_only_keys_leave_the_output_rows_shared(neox_dir):
    model = AutoModelForCausalLM.from_pretrained(neox_dir, tie_word_embeddings=False)
    routed = RoutedModel(model, PLANTED, forget_tokens=[5, 9], forget_outputs=False)
    assert "gpt_neox.embed_in.weight" in routed.planted and "embed_out.weight" not in routed.planted


def test_routed_keys_learn_only_through_the_planted_neurons(model):
    """``forget_keys="routed"``: the same forward values and the same planted-slice gradients as
    the plain forget view, but the key rows' gradient comes through the planted neurons alone —
    with the planted output columns zeroed (no path through the plant) they get none."""
    ids = torch.tensor([[5, 9, 40, 41, 5, 42, 9, 43]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    embed = "gpt_neox.embed_in.weight"

    def run(route: bool, silence: bool = False) -> tuple[torch.Tensor, dict]:
        routed = RoutedModel(AutoModelForCausalLM.from_pretrained(model.name_or_path), PLANTED,
                             forget_tokens=[5, 9], forget_outputs=False, route_keys=route)
        if silence:
            with torch.no_grad():
                routed.planted["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"].zero_()
                routed.planted["gpt_neox.layers.1.mlp.dense_4h_to_h.weight"].zero_()
        logits = routed.forward(ids, "forget")
        lm_loss(logits, ids, mask).backward()
        return logits.detach(), {n: p.grad.clone() for n, p in routed.planted.items() if p.grad is not None}

    plain_logits, plain = run(False)
    routed_logits, routed = run(True)
    assert torch.allclose(plain_logits, routed_logits, atol=1e-6)
    for name in plain:
        if name != embed:
            assert torch.allclose(plain[name], routed[name], atol=1e-6), name
    assert routed[embed].abs().sum() > 0 and not torch.allclose(plain[embed], routed[embed])
    _, silent_plain = run(False, silence=True)
    _, silent = run(True, silence=True)
    assert silent_plain[embed].abs().sum() > 0 and silent.get(embed, torch.zeros(1)).abs().sum() == 0


def test_plant_epoch_steps_train_the_plant_and_nothing_shared(model):
    """The plant epochs' step (``plant_only``, gate mode): forget rows train the planted slices,
    plant-on retain rows its input side; no shared leaf gets a gradient."""
    routed = RoutedModel(model, PLANTED, retain_trains="gate")
    ids = torch.randint(3, 300, (3, 12))
    mask = torch.ones_like(ids, dtype=torch.bool)
    retain, forget = routed_losses(routed, (ids, mask), (ids[:1], mask[:1]), torch.zeros(3, dtype=torch.bool),
                                   plant_only=True)
    assert retain is not None and forget is not None
    (retain + forget).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in routed.shared.values())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in routed.planted.values())
