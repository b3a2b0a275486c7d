"""Saving: a new HF checkpoint that reloads everywhere with the same logits, never over its source."""

from __future__ import annotations

import json

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoModelForCausalLM

from attribution.components import Component
from loka.engine import AblationPlan, Provenance, commit
from loka.errors import CheckpointWriteError
from loka.io.checkpoint import save_checkpoint, sha256_of_checkpoint
from loka.io.manifest import MANIFEST, seal_problem
from tests.engine.conftest import ARCHS

PLAN = AblationPlan.zero([Component(0, "neuron", 3), Component(1, "head", 2)],
                         provenance=Provenance("atp", "tiny", "d4t4"))


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_edit_reloads_with_transformers_and_the_bridge(arch, boot, tokens, tmp_path,
                                                             random_checkpoints):
    bridge = boot(arch)
    commit(bridge, PLAN)
    edited = bridge(tokens)
    out = save_checkpoint(bridge, tmp_path / "edited", method="ablation_plan", plans=[PLAN.to_dict()],
                          metrics={"forget_acc": 0.1})
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        assert (plain(tokens).logits - edited).abs().max() <= 1e-5
    rebooted = TransformerBridge.boot_transformers(str(out), device="cpu")
    assert (rebooted(tokens) - edited).abs().max() <= 1e-5
    source = random_checkpoints[arch]
    info = json.loads((out / MANIFEST).read_text())
    assert info["source_model"] == str(source)
    assert info["source_sha256"] == sha256_of_checkpoint(source)
    assert AblationPlan.from_dict(info["plans"][0]) == PLAN
    assert info["ranking_methods"] == ["atp"] and info["data_hashes"] == ["d4t4"]
    assert info["metrics"] == {"forget_acc": 0.1} and info["versions"]["torch"]
    assert sha256_of_checkpoint(out) != sha256_of_checkpoint(source)
    assert info["provenance"]["weights_sha256"] == sha256_of_checkpoint(out) and seal_problem(info) is None


def _listing(path):
    return sorted((p.relative_to(path), p.stat().st_mtime_ns) for p in path.rglob("*"))


def test_the_source_directory_is_never_written(boot, random_checkpoints):
    bridge = boot("gpt_neox")
    source = random_checkpoints["gpt_neox"]
    before = _listing(source)
    for target in (source, source / "edited"):
        with pytest.raises(CheckpointWriteError, match="inside the model directory"):
            save_checkpoint(bridge, target, method="m")
    with pytest.raises(CheckpointWriteError, match="contains"):
        save_checkpoint(bridge, source.parent, method="m")
    assert _listing(source) == before


def test_an_existing_checkpoint_or_directory_is_never_replaced(boot, tmp_path):
    bridge = boot("gpt2")
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(CheckpointWriteError, match="not empty"):
        save_checkpoint(bridge, target, method="m")
    assert (target / "keep.txt").exists()
    first = save_checkpoint(bridge, tmp_path / "first", method="m")
    with pytest.raises(CheckpointWriteError, match="model checkpoint directory"):
        save_checkpoint(bridge, first, method="m")
    with pytest.raises(CheckpointWriteError, match="model checkpoint directory"):
        save_checkpoint(bridge, first / "nested", method="m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "out"]  # no temporary left


def test_non_finite_weights_are_never_saved(boot, tmp_path):
    bridge = boot("llama")
    with torch.no_grad():
        next(bridge.original_model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointWriteError, match="non-finite"):
        save_checkpoint(bridge, tmp_path / "out", method="m")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination_is_a_clear_error(boot, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(CheckpointWriteError, match="cannot write"):
        save_checkpoint(boot("llama"), blocker / "out", method="m")


def test_an_interrupted_save_leaves_nothing(boot, tmp_path, monkeypatch):
    bridge = boot("gpt_neox")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bridge.tokenizer, "save_pretrained", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(bridge, tmp_path / "out", method="m")
    assert list(tmp_path.iterdir()) == []
