"""Shared fixtures: seeded randomness and tiny random-init checkpoints built locally (no hub)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings as _hypothesis_settings

from tests.helpers import make_random_checkpoint

# Property tests explore a fixed sequence of examples, so `make test` and CI are repeatable;
# set LOKA_HYPOTHESIS_RANDOM=1 to explore new ones.
_hypothesis_settings.register_profile("loka", derandomize=not os.environ.get("LOKA_HYPOTHESIS_RANDOM"),
                                      deadline=None)
_hypothesis_settings.load_profile("loka")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def random_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-init GPT-NeoX, GPT-2 and Llama checkpoints saved with a tokenizer."""
    root = tmp_path_factory.mktemp("random-ckpt")
    return {arch: make_random_checkpoint(arch, root / arch) for arch in ("gpt_neox", "gpt2", "llama")}


@pytest.fixture(scope="session")
def neox_dir(random_checkpoints) -> Path:
    return random_checkpoints["gpt_neox"]


@pytest.fixture(scope="session")
def tiny_world():
    """The `tiny` world, built once per cache (``$LOKA_CACHE``, default ``~/.cache/loka``)."""
    from loka.world.build import load_world

    return load_world("tiny", progress=False)


@pytest.fixture(scope="session")
def tiny_demo(tiny_world, tmp_path_factory):
    """`loka demo` on the tiny world with every method, once per session (the demo and notebook
    tests read it). Shortened to keep it to minutes: the pipeline is under test here, not how
    well each method forgets (that is `make test-slow` and `make demo`)."""
    from loka.verify.measure import VerifySettings
    from loka.workflows.demo import run_demo

    quick = {m: {"epochs": 3} for m in ("gradient_ascent", "grad_diff", "npo", "task_vector",
                                         "counterexample")}
    quick |= {"loka": {"max_rounds": 3}, "loka-ft": {"steps": 30}}
    return run_demo("tiny", tmp_path_factory.mktemp("tiny-demo"), progress=False, settings=quick,
                    verify_settings=VerifySettings(relearn_steps=10, relearn_eval_every=5),
                    command="loka demo --preset tiny")
