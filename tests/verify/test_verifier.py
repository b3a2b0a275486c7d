"""The verifier end to end on the tiny world: it tells base, retrain and output suppression apart."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from loka.errors import LokaError
from loka.verify.data import VerifyData
from loka.verify.loaded import load_model
from loka.verify.measure import Measurements, VerifySettings
from loka.verify.verifier import report_keys, verify

FAST = VerifySettings(relearn_steps=10, relearn_eval_every=5)


@pytest.fixture(scope="module")
def data(tiny_world):
    return VerifyData.from_world(tiny_world)


@pytest.fixture(scope="module")
def retrain(tiny_world, data):
    return Measurements(load_model(tiny_world.retrain_dir, name="retrain"), data, FAST)


@pytest.fixture(scope="module")
def reports(tiny_world, data, retrain):
    subjects = data.subjects("forget")
    return {
        "base": verify(tiny_world.base_dir, data, retrain=retrain, name="base", settings=FAST),
        "retrain": verify(retrain, data, retrain=retrain, settings=FAST),
        "suppressed": verify(tiny_world.base_dir, data, retrain=retrain, name="suppressed",
                             refusal_filter={"subjects": subjects, "refusal": "I cannot say."},
                             settings=FAST),
    }


def test_base_leaks_membership_and_probes_read_it(reports):
    base, retrain = reports["base"], reports["retrain"]
    assert base.mia_auc["loss"] > retrain.mia_auc["loss"] + 0.3
    assert base.mia_auc["loss"] > 0.9 and abs(retrain.mia_auc["loss"] - 0.5) < 0.15
    assert base.grades["privacy_leakage"] == "significant"
    # tiny has too few people per class for high absolute probe accuracy; the ordering must hold
    assert base.probe_accuracy > retrain.probe_accuracy + 0.15
    assert base.probe_accuracy > base.probe_holdout_accuracy + 0.15
    assert base.extraction["exact_match_rate"] > 0.9 > retrain.extraction["exact_match_rate"]


def test_retrain_knows_the_forget_set_like_holdout_and_is_its_own_reference(reports):
    retrain = reports["retrain"]
    assert abs(retrain.forget_accuracy - retrain.holdout_accuracy) < 0.15
    assert retrain.privleak == 0.0 and retrain.forget_quality == 1.0
    assert retrain.mia_auc["reference"] == 0.5  # NLL_retrain - NLL_retrain is 0 for everyone
    assert reports["base"].forget_quality < 1e-3  # base's truth ratios are nothing like retrain's


def test_output_suppression_is_exposed(reports):
    base, sup = reports["base"], reports["suppressed"]
    assert base.forget_accuracy > 0.8 and sup.forget_accuracy < 0.05
    assert sup.accuracy["forget"]["train"]["greedy"] < 0.05
    assert sup.retain_accuracy == base.retain_accuracy and sup.holdout_accuracy == base.holdout_accuracy
    # the weights are the base's: every logits-based measurement says so
    assert sup.probe_accuracy == base.probe_accuracy
    assert sup.relearn_accuracy == base.relearn_accuracy
    assert sup.mia_auc == base.mia_auc and sup.privleak == base.privleak
    assert sup.grades["privacy_leakage"] == "significant"


def test_report_json_has_every_key_and_no_nan(reports):
    for report in reports.values():
        d = report.to_dict()
        text = json.dumps(d, allow_nan=False)
        assert "NaN" not in text and "Infinity" not in text
        missing = [k for k in report_keys() if k not in d]
        assert not missing, missing
        assert set(d["mia_auc"]) >= {"loss", "zlib", "min_k", "min_k_plus_plus", "reference"}
        roc = d["curves"]["mia_roc"]["loss"]
        assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
        relearn = d["curves"]["relearn"]["model"]
        assert relearn["steps"][0] == 0 and len(relearn["recall"]) == len(relearn["steps"])


def test_greedy_from_teacher_forcing_equals_real_greedy_decoding(tiny_world, retrain, data):
    """An answer is greedy-correct iff generate() reproduces it: check on real generations."""
    from loka.verify.measurements.extraction import greedy_continue

    base = Measurements(load_model(tiny_world.base_dir), data, FAST)
    tok = base.model.tokenizer
    facts = data.fact_set("forget", "novel")  # a mix of right and wrong answers
    ff = base.facts("forget", "novel")
    got = []
    for f in facts:
        prompt = [tok.bos_token_id] + tok(f.prompt, add_special_tokens=False)["input_ids"]
        answer = tok(" " + f.answer, add_special_tokens=False)["input_ids"]
        gen = greedy_continue(base.model.model, __import__("torch").tensor([prompt]), len(answer))
        got.append(gen[0].tolist() == answer)
    assert 0 < ff.greedy.mean() < 1
    assert ff.greedy.tolist() == got


def test_missing_retrain_gives_nulls_with_reasons(tiny_world, data):
    d = verify(tiny_world.retrain_dir, data, retrain=None, settings=FAST).to_dict()
    for key in ("privleak", "forget_quality", "relearn_retrain_accuracy"):
        assert d[key] is None and "retrain" in d[f"{key}_reason"], key
    assert d["mia_auc"]["reference"] is None and "retrain" in d["mia_auc"]["reference_reason"]
    assert all(d["privleak_by_attack"][a] is None for a in ("loss", "zlib", "min_k"))
    assert d["mia_auc"]["loss"] is not None and not math.isnan(d["mia_auc"]["loss"])


def test_a_model_with_another_tokenizer_is_refused(neox_dir, data):
    with pytest.raises(LokaError, match="tokenizer differs"):
        verify(neox_dir, data, settings=FAST)


def test_cost_from_seconds_and_params_changed_counted_against_base(tiny_world, data, retrain):
    d = verify(retrain, data, base=tiny_world.base_dir, seconds=data.retrain_seconds,
               settings=FAST).to_dict()
    n = sum(p.numel() for p in retrain.model.model.parameters())
    assert d["params_changed"] == n  # a retrained model differs everywhere
    assert d["cost_vs_retrain"] == pytest.approx(1.0)


def test_relearn_splits_by_person():
    from loka.io.data import FactRecord
    from loka.verify.measurements.relearn import split_by_person

    facts = [FactRecord(f"{s} p{i}", "a", s, "x") for s in "ABCDEF" for i in range(3)]
    train, test = split_by_person(facts)
    assert {f.subject for f in train}.isdisjoint({f.subject for f in test})
    assert len(train) == len(test) == 9


def test_perturbed_answers_are_wrong_and_fixed():
    from loka.io.data import FactRecord
    from loka.verify.measurements.truth_ratio import perturbed_answers

    facts = [FactRecord("p", "Tessel", "A", "city"), FactRecord("q", "Hesk", "B", "city")]
    values = {"city": ["Hesk", "Tessel", "Velmora", "Brisca"]}
    wrong = perturbed_answers(facts, values, 2)
    assert all(f.answer not in w and len(set(w)) == 2 for f, w in zip(facts, wrong, strict=True))
    assert wrong == perturbed_answers(facts, values, 2)


def test_refusal_filter_counts_a_refusal_as_wrong(data):
    from loka.io.refusal import RefusalFilter

    f = RefusalFilter(("Mira Coltan",), "I cannot say.")
    assert f.refused(["Mira Coltan was born in", "Osric Pell was born in"]).tolist() == [True, False]
    first, whole = f.answer_correct(data.tokenizer, ["Velmora", "I"])
    assert first.tolist() == [False, True] and whole.tolist() == [False, True]
    assert np.all(~first[:1])


def test_manifest_gives_cost_and_a_changed_source_is_a_warning(tiny_world, tmp_path):
    import shutil

    from loka.io.manifest import MANIFEST, write_manifest

    ckpt, source = tmp_path / "edited", tmp_path / "source"
    shutil.copytree(tiny_world.base_dir, ckpt)
    shutil.copytree(tiny_world.base_dir, source)
    manifest = {"source_model": str(source), "source_sha256": "0" * 64, "method": "m",
                "metrics": {"params_changed": 123, "seconds": 4.5}, "provenance": {}}
    write_manifest(ckpt, manifest)
    loaded = load_model(ckpt)
    assert loaded.params_changed == 123 and loaded.seconds == 4.5
    assert any("changed since" in w for w in loaded.warnings)
    (ckpt / MANIFEST).write_text(json.dumps(manifest | {"metrics": {"params_changed": 7}}))
    unsealed = load_model(ckpt)  # hand-edited claims are reported and ignored
    assert unsealed.params_changed is None and any("no seal" in w for w in unsealed.warnings)


def test_a_non_finite_model_is_an_error_not_perfect_erasure(tiny_world, data):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_world.base_dir).eval()
    with torch.no_grad():
        model.gpt_neox.layers[0].mlp.dense_4h_to_h.weight.fill_(float("nan"))
    from loka.errors import LokaError

    with pytest.raises(LokaError, match="NaN or infinite"):  # never graded as perfect erasure
        verify((model, tiny_world.tokenizer()), data, diverged=True, settings=FAST)


def test_a_model_read_after_another_prefix_than_the_data_is_refused(random_checkpoints):
    """A tokenizer saved with ``set_prefix(tok, "none")`` (an edited model) against the data's default
    ``bos``: every score would be read after another first token, so the verifier refuses with both
    names; the same prefix passes."""
    from transformers import AutoTokenizer

    from attribution.data import set_prefix
    from loka.verify.loaded import check_tokenizer

    data_tok = AutoTokenizer.from_pretrained(random_checkpoints["llama"])
    model_tok = AutoTokenizer.from_pretrained(random_checkpoints["llama"])
    check_tokenizer(model_tok, data_tok)
    set_prefix(model_tok, "none")
    with pytest.raises(LokaError, match="puts 'none' before every text, the data's 'bos'"):
        check_tokenizer(model_tok, data_tok, "model")
    set_prefix(data_tok, "none")
    check_tokenizer(model_tok, data_tok)
