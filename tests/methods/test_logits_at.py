"""`loka.evaluate.logits_at` gives a full pass's ``logits[where]``, in its order, however the
rows are bucketed by length and cut, on a plain HF model and on a bridge."""

from __future__ import annotations

import random

import pytest
import torch

from attribution.data import tokenize_facts
from attribution.metrics import read_positions
from loka.evaluate import logits_at, logits_of, prompt_ends
from loka.io.models import load_hf
from loka.methods.localized.common import analysis_bridge

WORDS = "Mira Coltan was born in Velmora and works as a glassblower at Harrow Mills near Tessel".split()


def _facts(tokenizer, n=70, seed=0):
    rng = random.Random(seed)
    prompts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 9))) for _ in range(n)]
    answers = [" ".join(rng.choices(WORDS, k=rng.randint(1, 3))) for _ in range(n)]
    return tokenize_facts(tokenizer, prompts, answers)


@pytest.mark.parametrize("wrap", ["hf", "bridge"])
@pytest.mark.parametrize("positions", ["answers", "prompt_ends"])
@pytest.mark.parametrize("buckets", [1, 2, 4])
def test_logits_at_equals_the_full_pass(neox_dir, wrap, positions, buckets):
    model, tokenizer = load_hf(neox_dir)
    model = analysis_bridge(model, tokenizer) if wrap == "bridge" else model
    batch = _facts(tokenizer)
    where = read_positions(batch) if positions == "answers" else prompt_ends(batch)
    with torch.inference_mode():
        full = logits_of(model, batch.input_ids, batch.attention_mask)[where]
        got = logits_at(model, batch, where, buckets=buckets)
    torch.testing.assert_close(got, full, atol=1e-4, rtol=1e-4)


def test_bucketed_passes_give_the_one_pass_gradients(neox_dir):
    """The optimisation loops train through `logits_at`: the split must not change a gradient."""
    model, tokenizer = load_hf(neox_dir)
    batch = _facts(tokenizer)
    grads = []
    for buckets in (1, 4):
        model.zero_grad()
        logits_at(model, batch, read_positions(batch), buckets=buckets).logsumexp(-1).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for one, split in zip(*grads, strict=True):
        torch.testing.assert_close(split, one, atol=1e-4, rtol=1e-3)
