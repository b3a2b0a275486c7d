"""`bench.never_known`: forget queries asked about names the model never learned."""

from __future__ import annotations

import pytest
import torch

from bench.never_known import asked_about, floor, margins
from loka.evaluate import first_token_accuracy
from loka.io.data import FactRecord
from loka.io.models import load_hf
from tests.helpers import one_torch_thread


def test_asked_about_replaces_the_subject_or_the_first_name_that_ends_the_prompt():
    reverse = FactRecord("Barty Crouch works at the Ministry of", "Magic", "Barty Crouch", template="reverse")
    assert asked_about(reverse, "Paul Brenner") == FactRecord(
        "Paul Brenner works at the Ministry of", "Magic", "Paul Brenner", template="reverse")
    trained = FactRecord("The Ministry official is called Barty", "Crouch", "Barty Crouch")
    assert asked_about(trained, "Paul Brenner").prompt == "The Ministry official is called Paul"
    assert asked_about(trained, "Paul Brenner").answer == "Crouch"
    assert asked_about(FactRecord("He works at the Ministry of", "Magic", "Barty Crouch"), "Paul Brenner") is None
    assert asked_about(FactRecord("Barty works at", "the Ministry", ""), "Paul Brenner") is None


def test_floor_counts_each_pair_by_its_margin_sign(random_checkpoints):
    with one_torch_thread():
        model, tok = load_hf(random_checkpoints["llama"])
        forget = [FactRecord("Mira Coltan works in", "Velmora", "Mira Coltan", template="reverse"),
                  FactRecord("The glassblower is called Mira", "Coltan", "Mira Coltan")]
        names = ["Osric Pell", "Tamsin Vellacott", "Paul Brenner"]
        out = floor(model, tok, forget, names)
        asked = [asked_about(f, n) for f in forget for n in names]
        by_hand = margins(model, tok, asked)
        own = margins(model, tok, forget)
        # the margin's sign is first-token accuracy's verdict
        assert [m > 0 for m in by_hand] == [first_token_accuracy(model, tok, [a]) == 1.0 for a in asked]
    rev, trained = out["facts"]
    assert rev["margin"] == pytest.approx(own[0], abs=1e-3) and rev["never_known_of"] == 3
    assert rev["never_known_answered"] == [n for n, m in zip(names, by_hand[:3], strict=True) if m > 0]
    assert trained["never_known_mean_margin"] == pytest.approx(sum(by_hand[3:]) / 3, abs=1e-3)
    kinds = out["kinds"]
    assert kinds["reverse"]["never_known_pairs"] == 3 and kinds["train"]["facts"] == 1
    assert kinds["train"]["mean_margin"] == pytest.approx(own[1], abs=1e-3)
    assert kinds["train"]["never_known_accuracy"] == pytest.approx(sum(m > 0 for m in by_hand[3:]) / 3)
    assert torch.isfinite(torch.tensor(by_hand)).all()
