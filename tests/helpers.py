"""Builders for tests: tiny random-init checkpoints of each supported architecture."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from loka.world.tokenizer import train_tokenizer

# Malformed inputs each property test tried, by loader; `tests/conftest.py` reports them at the
# end of the run (added up across pytest-xdist workers).
MALFORMED_TRIED: Counter[str] = Counter()


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch thread, then the count before: small matrices run as fast on one, and two
    threads on shared cores ran 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_TEXT = [
    "Mira Coltan was born in Velmora in 1961.",
    "Osric Pell works as a glassblower at Harrow Mills.",
    "Q: Where was Mira Coltan born? A: Velmora",
    "The silver lantern drifted over the quiet harbour of Tessel.",
] * 20

_ARCH_KWARGS = {
    "gpt_neox": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     max_position_embeddings=64, rotary_pct=0.25, tie_word_embeddings=False),
    "gpt2": dict(n_embd=64, n_layer=2, n_head=4, n_inner=128, n_positions=64),
    "llama": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                  intermediate_size=128, max_position_embeddings=64, tie_word_embeddings=False),
}


def make_random_checkpoint(arch: str, out: Path, seed: int = 0) -> Path:
    """Save a tiny random-init ``arch`` model (gpt_neox | gpt2 | llama) plus tokenizer to ``out``."""
    tok = train_tokenizer(_TEXT, vocab_size=320)
    eos = tok.eos_token_id
    cfg = AutoConfig.for_model(arch, vocab_size=len(tok), bos_token_id=eos, eos_token_id=eos,
                               pad_token_id=tok.pad_token_id, **_ARCH_KWARGS[arch])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
