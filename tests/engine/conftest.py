"""Fixtures for engine tests: fresh bridges over the tiny random checkpoints, and tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge

ARCHS = ("gpt_neox", "gpt2", "llama")


@pytest.fixture
def boot(random_checkpoints) -> Callable[[str], TransformerBridge]:
    """A fresh bridge per call (0.1 s), so no test sees another's edits."""
    return lambda arch: TransformerBridge.boot_transformers(str(random_checkpoints[arch]), device="cpu")


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(3, 300, (3, 9))


def snapshot(bridge) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in bridge.original_model.state_dict().items()}


def assert_identical(bridge, before: dict[str, torch.Tensor]) -> None:
    after = bridge.original_model.state_dict()
    assert after.keys() == before.keys()
    changed = [k for k, v in after.items() if not torch.equal(v, before[k])]
    assert not changed, f"parameters changed: {changed[:5]}"
