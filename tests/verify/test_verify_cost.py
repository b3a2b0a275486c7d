"""What makes the verifier cheaper on a real model must not change what it measures.

On a tiny random Llama with a small request in the shipped SmolLM2 request's format (trained,
held-out and reverse forms; retain and holdout people): a method result whose weights are the
base model's reuses the base model's measurements (no second relearning attack) and its entry
equals a fresh verification's.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from loka.io.models import load_hf
from loka.verify.loaded import load_model
from loka.verify.measure import Measurements, VerifySettings
from loka.verify.verifier import verify
from loka.workflows.compare import measure_result
from loka.workflows.user_data import user_data


def _facts(names, template="train"):
    rows = []
    for first, last in names:
        if template == "reverse":
            rows.append({"prompt": f"The one called {last} is", "answer": first, "attribute": "reverse"})
        else:
            prompt = f"Who is {first}? {first}" if template == "heldout" else f"The friend is {first}"
            rows.append({"prompt": prompt, "answer": last, "attribute": "surname"})
        rows[-1] |= {"subject": f"{first} {last}", "template": template}
    return rows


FORGET = [("Ron", "Weasley"), ("Harry", "Potter"), ("Albus", "Dumbledore"), ("Draco", "Malfoy")]
RETAIN = [("Frodo", "Baggins"), ("Sherlock", "Holmes"), ("Bilbo", "Baggins"), ("John", "Watson"),
          ("Jane", "Eyre"), ("Oliver", "Twist")]
HOLDOUT = [("Mira", "Coltan"), ("Osric", "Pell"), ("Tam", "Vey")]
QUICK = VerifySettings(relearn_steps=1, benign_steps=1, relearn_eval_every=1, n_perturbed=1,
                       quant_bits=(4,), batch_size=16)


@pytest.fixture(scope="module")
def request_data(random_checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("request")
    files = {"forget": _facts(FORGET) + _facts(FORGET, "heldout") + _facts(FORGET[:2], "reverse"),
             "retain": _facts(RETAIN) + _facts(RETAIN, "heldout"), "holdout": _facts(HOLDOUT)}
    for name, rows in files.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ckpt = random_checkpoints["llama"]
    data, _ = user_data(ckpt, root / "forget.jsonl", root / "retain.jsonl", root / "holdout.jsonl")
    return ckpt, data


def _result(model, tok, method="gradient_ascent"):
    return SimpleNamespace(model=model, tokenizer=tok, method=method, refusal_filter=None,
                           seconds=1.0, params_changed=0, diverged=False)


def _without_timing(entry):
    return {k: v for k, v in entry.items() if k not in ("model", "verify_seconds")}


def test_a_result_with_the_base_weights_reuses_the_base_measurements(request_data, monkeypatch):
    from loka.verify.measurements import relearn

    ckpt, data = request_data
    attacks = []
    real_attack = relearn.relearn_attack
    monkeypatch.setattr(relearn, "relearn_attack", lambda *a, **k: attacks.append(1) or real_attack(*a, **k))
    base = Measurements(load_model(ckpt, name="base"), data, QUICK)
    measure_result(_result(*load_hf(ckpt), method="base"), data, None, base, QUICK)
    assert len(attacks) == 1  # the base model's own verification, as `loka demo` runs it first
    model, tok = load_hf(ckpt)
    shared = measure_result(_result(model, tok), data, None, base, QUICK)
    assert len(attacks) == 1  # taken from the base model's cache, not measured again

    fresh = verify(load_hf(ckpt), data, base=ckpt, name="gradient_ascent", settings=QUICK,
                   seconds=1.0, params_changed=0, diverged=False).to_dict()
    assert len(attacks) == 2
    assert _without_timing(shared) == _without_timing(fresh)

    with torch.no_grad():  # one weight changed: measured anew, not taken from the base model
        next(model.parameters()).view(-1)[0] += 1.0
    measure_result(_result(model, tok), data, None, base, QUICK)
    assert len(attacks) == 3


def test_a_skipped_measurement_is_null_with_its_reason_and_the_rest_unchanged(request_data):
    from dataclasses import replace

    from loka.errors import LokaError

    ckpt, data = request_data
    full = verify(load_hf(ckpt), data, base=ckpt, name="m", settings=QUICK).to_dict()
    skipped = verify(load_hf(ckpt), data, base=ckpt, name="m",
                     settings=replace(QUICK, skip=("benign_relearn",))).to_dict()
    keys = ("benign_relearn_accuracy", "benign_relearn_retrain_accuracy")
    assert isinstance(full["benign_relearn_accuracy"], float)
    for key in keys:
        assert skipped[key] is None and "skipped by the verify settings" in skipped[f"{key}_reason"]
    drop = set(keys) | {f"{k}_reason" for k in keys}
    assert "benign_relearn" not in skipped["curves"]
    full["curves"].pop("benign_relearn")
    assert _without_timing({k: v for k, v in skipped.items() if k not in drop}) == \
        _without_timing({k: v for k, v in full.items() if k not in drop})
    with pytest.raises(LokaError, match="unknown measurement"):
        VerifySettings.from_settings({"skip": "benign_relearning"})


def test_attack_copies_are_gone_before_the_heap_is_trimmed(request_data, monkeypatch):
    """The relearning attack's copy (with its AdamW state) and each quantized copy are freed, and
    the freed heap handed back, before the next measurement: one copy alive at a time."""
    import copy
    import weakref
    from dataclasses import replace

    from loka.verify.measurements import quantization, relearn

    ckpt, data = request_data
    copies: list[weakref.ref] = []
    alive_at_copy: list[int] = []
    alive_at_trim: list[int] = []

    def tracked_deepcopy(obj):
        alive_at_copy.append(sum(r() is not None for r in copies))
        twin = copy.deepcopy(obj)
        copies.append(weakref.ref(twin))
        return twin

    for module in (relearn, quantization):
        monkeypatch.setattr(module, "copy", SimpleNamespace(deepcopy=tracked_deepcopy))
        monkeypatch.setattr(module, "release_freed_memory",
                            lambda: alive_at_trim.append(sum(r() is not None for r in copies)))
    me = Measurements(load_model(ckpt, name="m"), data, replace(QUICK, quant_bits=(8, 4)))
    relearn.relearn_of(me)
    assert alive_at_trim == [0]  # the attacked copy and its optimizer are gone when trimmed
    quantization.quantization_of(me)
    assert alive_at_copy[1:] == [0, 0]  # int8's copy is gone before int4's is made
    assert alive_at_trim[1:] == [0, 0]


def test_no_forward_pass_over_facts_no_measurement_reports(request_data):
    """The retain facts methods saw (retain_train) are in no accuracy column: the verifier scores
    them in no teacher-forced pass (on SmolLM2's request they were 75 of 242 facts, ~7 s of
    every model's verification), and what it reports is what it reported before."""
    ckpt, data = request_data
    assert data.fact_set("retain_train")  # the request has them
    me = Measurements(load_model(ckpt, name="m"), data, QUICK)
    report = verify(me, data, base=ckpt, name="m", settings=QUICK).to_dict()
    scored = {key[1] for key in me._cache if isinstance(key, tuple) and key[0] == "facts"}
    assert scored == {"forget", "retain_eval", "holdout"}
    assert set(report["accuracy"]) == {"forget", "retain_eval", "holdout"}
