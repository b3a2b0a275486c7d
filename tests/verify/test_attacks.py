"""The verifier's attacks, each checked against its definition on a case computed by hand, and
on the tiny world where the definition pins the answer (base keeps it, retrain has nothing)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loka.errors import LokaError
from loka.evaluate import first_token_accuracy
from loka.io.data import FactRecord
from loka.io.models import load_hf
from loka.verify.measure import VerifySettings
from loka.verify.measurements.depth import uds
from loka.verify.measurements.extraction import extraction_strength_es
from loka.verify.measurements.icl import shot_prompts
from loka.verify.measurements.logit_lens import logit_lens
from loka.verify.measurements.mia import min_k_plus_plus_z
from loka.verify.measurements.quantization import quantize_rtn, quantized_copy


def test_min_k_plus_plus_on_a_near_certain_distribution_is_very_negative_not_zero():
    # p = softmax([30, 0, 0]): token 0 has all the mass, sigma is tiny; token 1 observed.
    logits = torch.tensor([[[30.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    z = min_k_plus_plus_z(logits, torch.tensor([[0, 1]]))
    assert float(z[0, 0]) < -1000  # (log p(1) - mu) / max(sigma, 1e-3) with log p(1) = -30
    flat = min_k_plus_plus_z(torch.zeros(1, 2, 3), torch.tensor([[0, 2]]))
    assert float(flat[0, 0]) == 0.0  # a flat distribution: every token is its own mean


def test_extraction_strength_matches_its_definition_by_hand():
    mask = torch.ones(3, 4, dtype=torch.bool)
    hits = torch.tensor([[True, True, True, True],     # all reproduced: k* = 0, ES = 1
                         [False, True, False, True],   # only the last: k* = 3, ES = 1/4
                         [True, True, True, False]])   # not even the last: k* = 4, ES = 0
    assert extraction_strength_es(hits, mask).tolist() == [1.0, 0.25, 0.0]
    padded = torch.tensor([[True, True, False, False]])  # a 2-token item: k* = 0
    assert extraction_strength_es(torch.tensor([[True, True, False, True]]), padded).tolist() == [1.0]


def test_round_to_nearest_quantization_by_hand():
    w = torch.tensor([[1.0, -0.5, 0.26, 0.0, 127.0, 1.0, -64.0, 0.4]])
    q8 = quantize_rtn(w, bits=8, group=4)  # group 1: scale 1/127; group 2: scale 1
    assert torch.allclose(q8[0, :4], torch.round(w[0, :4] * 127) / 127)
    assert q8[0, 4:].tolist() == [127.0, 1.0, -64.0, 0.0]
    q4 = quantize_rtn(torch.tensor([[0.7, -0.26, 0.04, 0.0]]), bits=4, group=4)  # scale 0.1
    assert torch.allclose(q4, torch.tensor([[0.7, -0.3, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="4 or 8"):
        quantize_rtn(w, bits=3, group=4)


def test_uds_by_hand():
    # two facts, two blocks; the second fact has no block above 0.05 and is left out
    d_r = np.array([[2.0, 1.0], [0.01, 0.0]])
    d_m = np.array([[1.0, 2.0], [0.5, 0.5]])
    assert math.isclose(uds(d_r, d_m), (2 * 0.5 + 1 * 1.0) / 3)
    assert uds(d_r, d_r) == 1.0 and uds(d_r, np.zeros_like(d_r)) == 0.0


def test_icl_shots_are_other_subjects_of_the_same_attribute():
    facts = [FactRecord(f"{s} was born in", c, s, "city") for s, c in (("A", "X"), ("B", "Y"), ("C", "Z"))]
    facts.append(FactRecord("A works as a", "tailor", "A", "job"))
    prompts = shot_prompts(facts, facts, k=2, seed=0)
    first = prompts[0]["prompt"].split("\n")
    assert first[-1] == "A was born in" and len(first) == 3
    assert all(s.startswith(("B ", "C ")) and s.endswith(".") for s in first[:-1])
    assert prompts[3]["prompt"] == "A works as a"  # no other subject has a job: no shots


@pytest.mark.parametrize("bad", [{"quant_bits": (3,)}, {"icl_shots": 0}, {"benign_steps": -1}])
def test_attack_settings_out_of_range_are_one_line_errors(bad):
    with pytest.raises(LokaError):
        VerifySettings(**bad)


def test_logit_lens_at_the_last_layer_is_the_model_itself(tiny_world):
    model, tok = load_hf(tiny_world.base_dir)
    facts = tiny_world.world.facts("forget")
    lens = logit_lens(model, tok, facts)
    assert len(lens["top1"]) == model.config.num_hidden_layers
    assert lens["top1"][-1] == pytest.approx(first_token_accuracy(model, tok, facts))


def test_quantizing_the_retrain_model_recovers_nothing(tiny_world):
    model, tok = load_hf(tiny_world.retrain_dir)
    facts = tiny_world.world.facts("forget")
    before = first_token_accuracy(model, tok, facts)
    after = first_token_accuracy(quantized_copy(model, 8, 64), tok, facts)
    assert abs(after - before) <= 0.05
