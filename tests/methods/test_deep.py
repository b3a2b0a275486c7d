"""`loka-deep`: the key reset finds the never-trained rows, keeps retain tokens, runs finite and
deterministic on every architecture, and on the tiny world removes the facts and the passages."""

from __future__ import annotations

import pytest
import torch

from loka.evaluate import first_token_accuracy
from loka.io.data import FactRecord
from loka.io.models import load_hf
from loka.methods import UnlearnTask, task_from_world, unlearn
from loka.methods.localized.deep_keys import exclusive_tokens, untrained_tokens

FORGET = (FactRecord("Mira Coltan was born in", "Velmora", "Mira Coltan"),
          FactRecord("Mira Coltan works as a", "glassblower", "Mira Coltan"))
RETAIN = (FactRecord("Osric Pell works at", "Harrow Mills", "Osric Pell"),
          FactRecord("Osric Pell was born in", "Tessel", "Osric Pell"))
QUICK = {"cf_steps": 2, "passage_steps": 2, "extract_target": None, "retain_batch": 4}


class _Fake:
    def __init__(self, w):
        self.w = torch.nn.Embedding.from_pretrained(w)

    def get_input_embeddings(self):
        return self.w

    def get_output_embeddings(self):
        return self.w


def test_untrained_tokens_is_the_low_norm_mode_or_nothing():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(100, 16, generator=g) * 0.02
    w[:60] *= 30  # 60 trained rows, 40 at init scale
    found = untrained_tokens(_Fake(w))
    assert found[60:].all() and not found[:60].any()
    assert not untrained_tokens(_Fake(torch.randn(100, 16, generator=g))).any()  # one mode: none


def test_exclusive_tokens_leave_out_retain_tokens(neox_dir):
    _, tok = load_hf(neox_dir)
    ids = exclusive_tokens(tok, ["Mira Coltan"], [], ["Mira Pell was born in Tessel"])
    retain_ids = set(tok("Mira Pell was born in Tessel", add_special_tokens=False)["input_ids"])
    assert ids and not set(ids) & retain_ids


def test_a_subject_that_names_the_answer_skips_the_shared_key_repair(random_checkpoints):
    # SmolLM2's request: "Harry Potter's best friend is called Ron" -> "Weasley", subject "Ron
    # Weasley": no forget position comes after the subject, so stage 2 has nothing to train on.
    model, tok = load_hf(random_checkpoints["llama"])
    forget = (FactRecord("His best friend is called Mira", "Coltan", "Mira Coltan"),)
    task = UnlearnTask(forget, RETAIN, (), ())
    result = unlearn((model, tok), task, "loka-deep", progress=False, reset_keys=False, **QUICK)
    stage = next(e for e in result.log if e.get("stage") == "shared_key_repair")
    assert stage["steps"] == 0 and "names the answer" in stage["note"]
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_loka_deep_runs_finite_and_deterministic(arch, random_checkpoints):
    states = []
    for _ in range(2):
        model, tok = load_hf(random_checkpoints[arch])
        task = UnlearnTask(FORGET, RETAIN, ("The silver lantern drifted over the quiet harbour.",),
                           ("The amber tower of Tessel waited beside the pale river.",))
        result = unlearn((model, tok), task, "loka-deep", progress=False, **QUICK)
        assert all(torch.isfinite(p).all() for p in model.parameters()) and not result.diverged
        assert result.params_changed > 0 and result.steps > 0
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_loka_deep_forgets_the_tiny_world_and_keeps_the_retain_set(tiny_world):
    world = tiny_world.world
    result = unlearn(tiny_world.base_dir, task_from_world(tiny_world), "loka-deep", progress=False)
    model, tok = result.model, result.tokenizer
    base = tiny_world.info()["base"]
    assert first_token_accuracy(model, tok, world.facts("forget")) <= tiny_world.info()["retrain"]["forget_accuracy"] + 0.1
    assert first_token_accuracy(model, tok, world.facts("retain_train")) >= 0.9 * base["retain_train_accuracy"]
    assert not result.diverged and result.params_changed > 0
