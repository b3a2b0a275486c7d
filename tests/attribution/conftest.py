"""A booted tiny GPT-NeoX and small fact / passage sets, shared by the attribution tests."""

from __future__ import annotations

import pytest
from transformer_lens.model_bridge import TransformerBridge

from attribution.data import tokenize_facts, tokenize_passages

FORGET = (["Mira Coltan was born in", "Osric Pell works as a"], ["Velmora", "glassblower"])
RETAIN = (["Q: Where was Mira Coltan born? A:", "The silver lantern drifted over the", "Osric Pell works at"],
          ["Velmora", "quiet harbour", "Harrow Mills"])
PASSAGES = ["The silver lantern drifted over the quiet harbour of Tessel.", "Osric Pell works as a glassblower."]


def boot(path):
    bridge = TransformerBridge.boot_transformers(str(path), device="cpu")
    bridge.eval()
    return bridge


@pytest.fixture(scope="module")
def bridge(neox_dir):
    return boot(neox_dir)


@pytest.fixture(scope="module")
def forget(bridge):
    return tokenize_facts(bridge.tokenizer, *FORGET, max_len=bridge.cfg.n_ctx)


@pytest.fixture(scope="module")
def retain(bridge):
    return tokenize_facts(bridge.tokenizer, *RETAIN, max_len=bridge.cfg.n_ctx)


@pytest.fixture(scope="module")
def passages(bridge):
    return tokenize_passages(bridge.tokenizer, PASSAGES, max_len=bridge.cfg.n_ctx)
