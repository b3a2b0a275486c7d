"""The `never_known` measurement: forget queries asked about people the model never learned.
By hand on a random model (the pairs, the margins' signs, the means), and on the tiny world where
the definition pins the answer: retrain never learned the forget people, so it sits at the floor."""

from __future__ import annotations

import pytest
import torch

from loka.evaluate import first_token_accuracy
from loka.io.data import FactRecord
from loka.io.models import load_hf
from loka.verify.data import VerifyData
from loka.verify.measurements.never_known import (
    asked_about,
    caveats,
    floor,
    forget_facts,
    gap,
    margins,
    pick_names,
)
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
    assert kinds["reverse"]["gap"] == pytest.approx(own[0] - sum(by_hand[:3]) / 3, abs=1e-5)
    assert out["gap"] == pytest.approx((own[0] - sum(by_hand[:3]) / 3 + own[1] - sum(by_hand[3:]) / 3) / 2, abs=1e-5)
    assert torch.isfinite(torch.tensor(by_hand)).all()


def test_gap_leaves_out_facts_no_never_known_person_was_asked():
    assert gap([2.0, -1.0, 9.0], [[-3.0, -3.0], [-1.0, -2.0], []]) == pytest.approx((5.0 + 0.5) / 2)
    assert gap([1.0], [[]]) is None
    assert pick_names(list("abcdefg"), 3) == ["a", "c", "e"] and pick_names(["a"], 16) == ["a"]


def test_caveats_name_knowledge_left_and_an_overshoot_per_template_family():
    kinds = {"train": {"accuracy": 0.0, "gap": -1.7}, "reverse": {"accuracy": 0.2, "gap": 1.3},
             "heldout": {"accuracy": 0.0, "gap": 0.4}, "qa": {"accuracy": 0.9, "gap": 5.0}}
    said = caveats({"never_known": {"kinds": kinds}}, None)
    assert len(said) == 2  # the calibrated family and the one still answered (accuracy says so) are quiet
    assert "trained forget facts are forgotten past the floor" in said[0] and "1.7 nats weaker" in said[0]
    assert "'reverse' queries" in said[1] and "hidden, not gone" in said[1]
    assert caveats({"never_known": None}, None) == [] and caveats({}, None) == []
    # a refusal filter: the weights answer (0.96, 10 nats above the floor), the model refuses (0.00)
    hidden = {"forget_accuracy": 0.0, "never_known": {"kinds": {"train": {"accuracy": 0.96, "gap": 10.2}}}}
    assert "(accuracy 0.00)" in caveats(hidden, None)[0] and "hidden, not gone" in caveats(hidden, None)[0]
    asked = {"unseen_templates": {"qa": {"forget": 0.1}}, "never_known": {"kinds": {"qa": {"accuracy": 0.9, "gap": 4.0}}}}
    assert "(accuracy 0.10)" in caveats(asked, None)[0]


def test_retrain_sits_at_the_floor_and_the_base_model_far_above_it(tiny_world):
    data = VerifyData.from_world(tiny_world)
    forget = forget_facts(data)
    names = pick_names(data.subjects("holdout"), 16)
    assert not set(names) & {f.subject for f in forget}
    with one_torch_thread():
        model, tok = load_hf(tiny_world.base_dir)
        base = floor(model, tok, forget, names)
        trained_accuracy = first_token_accuracy(model, tok, data.fact_set("forget"))
        retrain = floor(*load_hf(tiny_world.retrain_dir), forget, names)
    # each template family apart: a world's records carry their family, as user data's do
    assert all(f.kind == k for (_, k), facts in data.facts.items() for f in facts)
    assert set(base["kinds"]) == {k for (split, k) in data.facts if split == "forget" and data.has(split, k)}
    assert base["kinds"]["train"]["accuracy"] == pytest.approx(trained_accuracy, abs=1e-6)
    # The base model learned the forget people: its answers stand far above strangers'. Retrain
    # never saw them: the same queries about them and about never-known people are alike (0.09
    # nats on this build, against the base's 5.5).
    assert base["gap"] > 3.0
    assert abs(retrain["gap"]) < 0.5
    trained = retrain["kinds"]["train"]
    assert abs(trained["accuracy"] - trained["never_known_accuracy"]) < 0.1
