"""Provenance: the manifest records the inputs, `check_provenance` notices when they change,
and the same inputs and seed give the same ranking, weights and metrics."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from loka.evaluate import first_token_accuracy
from loka.io.manifest import read_manifest
from loka.io.models import load_hf
from loka.io.provenance import check_provenance
from loka.methods import task_from_world, unlearn

FAST_GA = {"epochs": 2, "lr": 3e-4, "eval_every": 3}


@pytest.fixture(scope="module")
def saved(tiny_world, tmp_path_factory):
    """A gradient-ascent model on tiny, saved from a *copy* of the base (so we may damage it)."""
    root = tmp_path_factory.mktemp("prov")
    source = shutil.copytree(tiny_world.base_dir, root / "base")
    data = shutil.copy(tiny_world.facts_file("forget"), root / "forget.jsonl")
    result = unlearn(source, task_from_world(tiny_world), "gradient_ascent", progress=False, **FAST_GA)
    path = result.save(root / "ga", source=source, data_files=[data], world=tiny_world)
    return path, source, root / "forget.jsonl"


def test_manifest_has_what_an_audit_needs(saved):
    path, source, data = saved
    m = read_manifest(path)
    assert m["source_model"] == str(source) and len(m["source_sha256"]) == 64
    assert m["method"] == "gradient_ascent" and m["result"]["settings"]["lr"] == 3e-4
    assert m["versions"]["torch"] and m["provenance"]["seed"] == 0 and len(m["manifest_sha256"]) == 64
    assert m["provenance"]["world"]["preset"] == "tiny"
    assert m["provenance"]["data_files"][0]["path"] == str(data.resolve())
    assert check_provenance(path) == []


def test_changed_inputs_and_weights_are_reported(saved, tmp_path):
    path, source, data = saved
    copy = shutil.copytree(path, tmp_path / "ga")
    original = data.read_bytes()
    try:
        data.write_bytes(original + b"\n")
        weights = next(copy.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
        warnings = check_provenance(copy)
        assert any("data file" in w and "has changed" in w for w in warnings)
        assert any("saved weights" in w and "modified after saving" in w for w in warnings)
        data.unlink()
        assert any("no longer exists" in w for w in check_provenance(copy))
    finally:
        data.write_bytes(original)


def test_an_edited_manifest_claim_breaks_the_seal(saved, tmp_path):
    copy = shutil.copytree(saved[0], tmp_path / "ga")
    manifest = json.loads((copy / "loka_manifest.json").read_text())
    manifest["result"]["params_changed"] = 7
    (copy / "loka_manifest.json").write_text(json.dumps(manifest))
    assert any("edited after saving" in w for w in check_provenance(copy))


def test_missing_or_malformed_manifests_are_warnings_not_crashes(tmp_path):
    assert "no loka_manifest.json" in check_provenance(tmp_path)[0]
    (tmp_path / "loka_manifest.json").write_text("[" * 100_000)
    assert "not valid JSON" in check_provenance(tmp_path)[0]
    (tmp_path / "loka_manifest.json").write_text(json.dumps({"source_model": 3, "source_sha256": "x"}))
    warnings = check_provenance(tmp_path)
    assert any("malformed" in w for w in warnings) and any("no provenance section" in w for w in warnings)


def test_loka_verify_prints_provenance_warnings(saved, tmp_path, monkeypatch, capsys):
    import loka.verify.verifier as verifier
    from loka.cli import main
    from loka.errors import LokaError

    copy = shutil.copytree(saved[0], tmp_path / "ga")
    weights = next(copy.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")

    def stop(*args, **kwargs):
        raise LokaError("stub verifier")  # the provenance check runs before verification

    monkeypatch.setattr(verifier, "verify", stop)
    assert main(["verify", "--model", str(copy), "--preset", "tiny", "--strict"]) == 2
    assert "provenance (--strict): saved weights" in capsys.readouterr().err


# ---- determinism ---------------------------------------------------------------------------

def test_same_inputs_give_the_same_ranking(tiny_world):
    from attribution import rank, tokenize_facts
    from loka.io.models import load_bridge

    bridge = load_bridge(tiny_world.base_dir)
    w = tiny_world.world
    sets = [tokenize_facts(bridge.tokenizer, [f.prompt for f in facts], [f.answer for f in facts])
            for facts in (w.facts("forget"), w.facts("retain_train")[:200])]
    a, b = rank(bridge, *sets, method="atp"), rank(bridge, *sets, method="atp")
    assert torch.equal(a.forget_scores, b.forget_scores) and torch.equal(a.retain_scores, b.retain_scores)
    assert a.top(20) == b.top(20)


@pytest.mark.parametrize(("method", "settings"), [
    ("gradient_ascent", FAST_GA),
    ("loka-ft", {"k": 32, "kinds": "neuron", "steps": 8, "lr": 3e-3, "forget_target": None}),
])
def test_same_inputs_and_seed_give_bit_identical_weights_and_metrics(tiny_world, method, settings):
    runs = []
    for _ in range(2):
        model, tok = load_hf(tiny_world.base_dir)
        unlearn((model, tok), task_from_world(tiny_world), method, seed=3, progress=False, **settings)
        acc = [first_token_accuracy(model, tok, tiny_world.world.facts(s)) for s in ("forget", "retain_eval")]
        runs.append(({k: v.clone() for k, v in model.state_dict().items()}, acc))
    (w1, acc1), (w2, acc2) = runs
    assert all(torch.equal(w1[k], w2[k]) for k in w1) and acc1 == acc2
