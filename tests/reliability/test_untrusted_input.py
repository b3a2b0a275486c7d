"""Untrusted files: no pickle anywhere, loaders refuse malformed input, paths never escape.

The JSONL fact/passage loaders have their own property tests (tests/test_data_loaders.py); the
valid-plan commit/undo property is tests/engine/test_commit.py. Here: ranking and plan JSON,
and invalid plans against a real model.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution.components import Component, ModelShape
from attribution.ranking import Ranking
from loka.engine import AblationPlan, PlanError, commit
from tests.helpers import MALFORMED_TRIED

ROOT = Path(__file__).resolve().parents[2]
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _sources() -> list[Path]:
    return sorted(p for d in ("loka", "attribution") for p in (ROOT / d).rglob("*.py"))


def test_weights_are_never_unpickled():
    """safetensors only: no pickle import, no torch.load without weights_only=True."""
    bad = []
    for path in _sources():
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                bad.append(f"{path.name}: {m.group(0)}")
        if re.search(r"^\s*(import pickle|from pickle|import dill|import joblib|import cloudpickle)",
                     text, re.M):
            bad.append(f"{path.name}: imports a pickle module")
        if re.search(r"trust_remote_code\s*=\s*True", text) or "allow_pickle=True" in text:
            bad.append(f"{path.name}: runs code from a checkpoint")
    assert not bad, bad


# ---- ranking JSON --------------------------------------------------------------------------

def _valid_ranking() -> dict:
    return {"format": "loka.attribution.ranking", "version": 1,
            "components": ["L0.N0", "L0.N1", "L0.N2"],
            "forget_scores": [1.0, 2.0, 3.0], "retain_scores": [0.1, 0.2, 0.3],
            "formula": "difference", "weight": 1.0, "method": "atp", "ablation": "zero",
            "model_id": "m", "forget_hash": "fh", "retain_hash": "rh", "forget_metric": "answer_logprob",
            "retain_metric": "answer_logprob", "seconds": 0.5, "forward_passes": 2,
            "backward_passes": 2, "eps": 1e-6, "options": {}}


def test_the_valid_ranking_loads(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(_valid_ranking()))
    assert len(Ranking.load(tmp_path / "r.json")) == 3


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(),
                 st.text(max_size=12), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _damaged_rankings():
    keys = sorted(_valid_ranking())
    wrong_value = st.tuples(st.sampled_from(keys), JUNK).map(lambda kv: {**_valid_ranking(), kv[0]: kv[1]})
    dropped = st.sampled_from(keys).map(lambda k: {x: v for x, v in _valid_ranking().items() if x != k})
    bad_score = st.tuples(st.sampled_from(["forget_scores", "retain_scores"]), st.integers(0, 2),
                          JUNK).map(lambda t: _with_item(t[0], t[1], t[2]))
    bad_component = st.tuples(st.integers(0, 2), JUNK).map(lambda t: _with_item("components", t[0], t[1]))
    as_text = st.one_of(wrong_value, dropped, bad_score, bad_component).map(json.dumps)
    raw = st.text(max_size=30)
    return st.one_of(as_text, raw)


def _with_item(key: str, i: int, value) -> dict:
    d = _valid_ranking()
    d[key] = list(d[key])
    d[key][i] = value
    return d


def _finite(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float) and abs(x) < 1e300 and math.isfinite(x)


def _fits_float32(x) -> bool:
    """The loader keeps scores as float32: valid iff the value stays finite in that type."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return bool(np.isfinite(np.float32(x)))


def _still_valid(text: str) -> bool:
    """Oracle: does a mutation happen to leave a well-formed ranking (e.g. seconds=3)?"""
    try:
        d = json.loads(text)
        comps = [Component.parse(c) for c in d["components"]]
    except (ValueError, TypeError, KeyError, AttributeError):
        return False
    strings = ("method", "model_id", "forget_hash", "retain_hash", "forget_metric", "retain_metric")
    d = {"eps": 1e-6, "options": {}} | d  # optional fields
    return (set(d) == set(_valid_ranking()) and d["format"] == "loka.attribution.ranking"
            and d["version"] == 1 and len(set(comps)) == len(comps) == 3
            and all(isinstance(d[k], list) and len(d[k]) == 3  # float32 scores
                    and all(_finite(x) and _fits_float32(x) for x in d[k])
                    for k in ("forget_scores", "retain_scores"))
            and all(isinstance(d[k], str) for k in strings) and d["formula"] in ("difference", "ratio")
            and (d["ablation"] is None or isinstance(d["ablation"], str))
            and all(_finite(d[k]) for k in ("weight", "seconds", "eps")) and d["weight"] >= 0
            and all(isinstance(d[k], int) and not isinstance(d[k], bool)
                    for k in ("forward_passes", "backward_passes"))
            and isinstance(d["options"], dict))


@PROPERTY
@given(text=_damaged_rankings())
def test_malformed_rankings_are_refused_with_a_value_error(tmp_path, text):
    path = tmp_path / "ranking.json"
    path.write_text(text)
    if _still_valid(text):
        Ranking.load(path)
        return
    MALFORMED_TRIED["ranking"] += 1
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Ranking.load(path)


def test_deeply_nested_and_oversized_rankings(tmp_path, monkeypatch):
    import attribution.ranking as ranking_module

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match="not valid JSON"):
        Ranking.load(deep)
    monkeypatch.setattr(ranking_module, "MAX_FILE_BYTES", 100)
    big = tmp_path / "big.json"
    big.write_text(json.dumps(_valid_ranking()))
    with pytest.raises(ValueError, match="byte limit"):
        Ranking.load(big)


# ---- ablation plan JSON --------------------------------------------------------------------

VALID_PLAN = AblationPlan.rescale([Component(0, "neuron", 3), Component(1, "head", 2)], [0.5, 2.0]).to_dict()


def _damaged_plans():
    keys = sorted(VALID_PLAN)
    wrong_value = st.tuples(st.sampled_from(keys), JUNK).map(lambda kv: {**VALID_PLAN, kv[0]: kv[1]})
    extra_key = st.text(min_size=1, max_size=6).filter(lambda k: k not in VALID_PLAN).map(
        lambda k: {**VALID_PLAN, k: 1})
    bad_component = JUNK.map(lambda v: {**VALID_PLAN, "components": ["L0.N3", v]})
    bad_factor = JUNK.map(lambda v: {**VALID_PLAN, "factor": [0.5, v]})
    shape = st.fixed_dictionaries({k: JUNK for k in ("n_layers", "n_heads", "d_mlp", "d_head", "d_model")})
    bad_shape = shape.map(lambda s: {**VALID_PLAN, "shape": s})
    mode_mix = st.sampled_from([{**VALID_PLAN, "mode": "zero"}, {**VALID_PLAN, "mode": "mean"},
                                {**VALID_PLAN, "factor": None}, {**VALID_PLAN, "components": []},
                                {**VALID_PLAN, "components": ["L0.N3", "L0.N3"]},
                                {**VALID_PLAN, "factor": 10 ** 400}])
    as_text = st.one_of(wrong_value, extra_key, bad_component, bad_factor, bad_shape, mode_mix)
    return st.one_of(as_text.map(lambda d: json.dumps(d, allow_nan=True)), st.text(max_size=30))


def _plan_still_valid(text: str) -> bool:
    try:
        AblationPlan.from_json(text)
    except PlanError:
        return False
    return True


@PROPERTY
@given(text=_damaged_plans())
def test_malformed_plans_are_refused_with_a_plan_error(text):
    """Every damaged plan raises PlanError (a LokaError: one CLI line) — nothing else escapes."""
    try:
        AblationPlan.from_json(text)
    except PlanError:
        MALFORMED_TRIED["plan"] += 1
        return
    except Exception as exc:  # any other exception type is the bug this test hunts
        pytest.fail(f"{type(exc).__name__} escaped for {text[:80]!r}: {exc}")
    # Accepted: only mutations that leave a well-formed plan may be (e.g. an int factor).
    assert AblationPlan.from_json(text).mode in ("zero", "mean", "rescale")


def test_deep_oversized_and_huge_number_plans_are_plan_errors(monkeypatch):
    import loka.engine.plan as plan_module

    for text in ("[" * 200_000 + "]" * 200_000, json.dumps({**VALID_PLAN, "factor": 10 ** 400}),
                 '{"format": 1, "factor": ' + "9" * 5000 + "}"):
        with pytest.raises(PlanError):
            AblationPlan.from_json(text)
    monkeypatch.setattr(plan_module, "MAX_JSON_CHARS", 10)
    with pytest.raises(PlanError, match="limit"):
        AblationPlan.from_json(json.dumps(VALID_PLAN))


# ---- invalid plans never touch the model ---------------------------------------------------

@pytest.fixture(scope="module")
def neox(random_checkpoints):
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(str(random_checkpoints["gpt_neox"]), device="cpu")


_bad_component = st.one_of(
    st.builds(Component, st.integers(2, 50), st.sampled_from(["neuron", "head"]), st.integers(0, 3)),
    st.builds(Component, st.integers(0, 1), st.just("neuron"), st.integers(128, 10**6)),
    st.builds(Component, st.integers(0, 1), st.just("head"), st.integers(4, 10**6)))
_good_component = st.builds(Component, st.integers(0, 1), st.just("neuron"), st.integers(0, 127))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good=st.lists(_good_component, max_size=4, unique=True), bad=_bad_component,
       wrong_shape=st.booleans(), at=st.integers(0, 4))
def test_invalid_plans_are_refused_without_touching_the_model(neox, good, bad, wrong_shape, at):
    comps = [c for c in good if c != bad]
    comps.insert(min(at, len(comps)), bad)
    shape = ModelShape.of(neox)
    pin = ModelShape(shape.n_layers + 1, shape.n_heads, shape.d_mlp, shape.d_head, shape.d_model) \
        if wrong_shape else None
    plan = AblationPlan.zero(comps, shape=pin)
    before = {k: v.clone() for k, v in neox.original_model.state_dict().items()}
    MALFORMED_TRIED["plan applied to a model"] += 1
    with pytest.raises(PlanError):
        commit(neox, plan)
    after = neox.original_model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


# ---- paths read from files never direct a write --------------------------------------------

def test_hostile_method_names_in_results_stay_inside_the_report_dir(tmp_path):
    from loka.report import write_report
    from tests.report_helpers import fake_results

    results = fake_results()
    results["methods"] = {f"../../escaped-{i}/{name}": entry
                          for i, (name, entry) in enumerate(results["methods"].items())}
    out = tmp_path / "a" / "b" / "report"
    paths = write_report(results, out)
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents]
    assert not outside, outside
    assert all(out in Path(p).resolve().parents for p in paths.values())


def test_manifest_paths_are_only_read_and_only_regular_files(tmp_path):
    from loka.io.provenance import check_provenance

    model = tmp_path / "model"
    model.mkdir()
    manifest = {"source_model": "/dev/zero", "source_sha256": "0" * 64,
                "provenance": {"data_files": [{"path": "/dev/zero", "sha256": "0" * 64},
                                              {"path": "../../../x", "sha256": 5}, "junk"]}}
    (model / "loka_manifest.json").write_text(json.dumps(manifest))
    before = sorted(tmp_path.rglob("*"))
    warnings = check_provenance(model)  # returns at once: /dev/zero is never read
    assert any("not a regular file" in w for w in warnings) and len(warnings) >= 3
    assert sorted(tmp_path.rglob("*")) == before
