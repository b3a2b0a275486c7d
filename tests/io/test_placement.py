"""Big models: accelerate dispatch gives the same ranking and the same edited logits as one
device; a 7B configuration is planned on the meta device; a plan is committed to a checkpoint
shard by shard, exactly as to a loaded model."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr
from transformers import AutoModelForCausalLM, LlamaConfig

from attribution import rank, tokenize_facts
from attribution.components import Component
from loka.engine import AblationPlan, commit
from loka.engine.stream import commit_to_checkpoint
from loka.errors import LokaError
from loka.io.models import load_bridge, load_hf
from loka.io.placement import Placement, parse_memory, plan_placement

PROMPTS = (["Mira Coltan was born in", "Osric Pell works as a", "The silver lantern drifted over the"],
           ["Velmora", "glassblower", "quiet harbour"])
PLAN = AblationPlan.zero([Component(0, "neuron", 3), Component(1, "head", 2), Component(1, "neuron", 7)])


def _offloaded(tmp_path) -> Placement:
    """Almost nothing on the CPU, the rest on disk: every layer streams from the offload folder."""
    return Placement.parse(device_map="auto", max_memory="cpu=50KB,disk=1GB", offload_folder=str(tmp_path / "offload"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"device_map": "everywhere"}, "one of auto"),
    ({"device_map": "auto", "max_memory": "cpu=lots"}, "DEVICE=SIZE"),
    ({"device_map": "auto", "max_memory": "gpu=2GiB"}, "unknown device"),
    ({"device_map": "auto", "max_memory": "disk=2GiB"}, "offload-folder"),
    ({"max_memory": "cpu=2GiB"}, "need --device-map"),
])
def test_bad_placements_are_one_line_errors(kwargs, message):
    with pytest.raises(LokaError, match=message):
        Placement.parse(**kwargs)


def test_a_7b_configuration_is_planned_without_weights():
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, vocab_size=32000)
    plan = plan_placement(cfg, parse_memory("0=10GiB,1=10GiB,cpu=30GiB"))
    assert 6.7e9 < plan["n_params"] < 6.8e9  # Llama-2-7B
    assert 0 <= plan["total_bytes"] - 4 * plan["n_params"] < 2**20  # float32 weights + small buffers
    assert set(plan["bytes_by_device"]) == {"0", "1", "cpu"}
    assert all(plan["bytes_by_device"][d] <= 10 * 2**30 for d in ("0", "1"))
    assert sum(plan["bytes_by_device"].values()) == plan["total_bytes"]
    assert plan["device_map"]["model.layers.0"] == "0" and plan["device_map"]["lm_head"] == "cpu"


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_streamed_commit_equals_the_commit_to_a_loaded_model(arch, random_checkpoints, tmp_path):
    source = random_checkpoints[arch]
    bridge = load_bridge(source)
    commit(bridge, PLAN)
    tokens = torch.tensor([[1, 5, 9, 2, 7]])
    with torch.no_grad():
        expected = bridge.original_model(tokens).logits
    out = commit_to_checkpoint(source, PLAN, tmp_path / "edited")
    streamed, _ = load_hf(out)
    with torch.no_grad():
        assert (streamed(tokens).logits - expected).abs().max() <= 1e-6
    from loka.io.provenance import check_provenance

    assert check_provenance(out) == []


def test_a_streamed_rescale_that_overflows_is_refused(random_checkpoints, tmp_path):
    plan = AblationPlan.rescale([Component(0, "neuron", 3)], 1e39)
    with pytest.raises(LokaError, match="non-finite"):
        commit_to_checkpoint(random_checkpoints["llama"], plan, tmp_path / "edited")
    assert not (tmp_path / "edited").exists()


def test_dispatched_ranking_and_edited_logits_equal_one_device(random_checkpoints, tmp_path):
    source = random_checkpoints["llama"]
    one, spread = load_bridge(source), load_bridge(source, placement=_offloaded(tmp_path))
    assert set(spread.original_model.hf_device_map.values()) == {"disk"}
    batches = [tokenize_facts(one.tokenizer, *PROMPTS, max_len=one.cfg.n_ctx) for _ in range(2)]
    a, b = rank(one, *batches, method="atp"), rank(spread, *batches, method="atp")
    assert a.components == b.components
    assert spearmanr(a.contrast_scores.numpy(), b.contrast_scores.numpy()).statistic >= 0.999
    commit(one, PLAN)
    edited = commit_to_checkpoint(source, PLAN, tmp_path / "edited")
    model = AutoModelForCausalLM.from_pretrained(edited, **_offloaded(tmp_path / "2").hf_kwargs())
    tokens = torch.tensor([[1, 5, 9, 2, 7]])
    with torch.no_grad():
        assert (model(tokens).logits - one.original_model(tokens).logits).abs().max() <= 1e-4
