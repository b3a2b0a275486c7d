"""Shared fixtures: seeded randomness and tiny random-init checkpoints built locally (no hub)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings as _hypothesis_settings

from tests.helpers import MALFORMED_TRIED, make_random_checkpoint

# Property tests explore a fixed sequence of examples, so `make test` and CI are repeatable;
# set LOKA_HYPOTHESIS_RANDOM=1 to explore new ones.
_hypothesis_settings.register_profile("loka", derandomize=not os.environ.get("LOKA_HYPOTHESIS_RANDOM"),
                                      deadline=None)
_hypothesis_settings.load_profile("loka")

# `make test` runs two pytest workers (pytest-xdist) on two cores: one torch thread each, and
# one in every process a test starts (the CLI, notebook kernels), so they do not contend for the
# cores — two threads spinning beside a busy process ran a notebook 10x slower; the tiny models'
# matrices run as fast on one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


# Tests that share an expensive fixture, by node-id prefix -> group: under pytest-xdist each
# group is one unit of work, so one worker builds the fixture once (the session's tiny demo,
# minutes; these modules' module-scoped models and verifications, 5-35 s each).
SHARED_FIXTURE = {
    "tests/test_demo.py::": "tiny_demo",
    "tests/test_notebooks.py::test_notebook_runs_top_to_bottom[03": "tiny_demo",
    "tests/verify/test_verifier.py::": "test_verifier",
    "tests/verify/test_verify_cost.py::": "test_verify_cost",
    "tests/reliability/test_update.py::": "test_update",
    "tests/test_cli_unlearn.py::": "test_cli_unlearn",
}


def _group(nodeid: str) -> str:
    return next((g for prefix, g in SHARED_FIXTURE.items() if nodeid.startswith(prefix)), nodeid)


def pytest_collection_modifyitems(items) -> None:
    """A test that asks for `tiny_demo` by name must be in its group (`SHARED_FIXTURE`)."""
    stray = [i.nodeid for i in items if "tiny_demo" in getattr(i, "fixturenames", ())
             and _group(i.nodeid) != "tiny_demo"]
    if stray:
        raise pytest.UsageError(f"add these to SHARED_FIXTURE in tests/conftest.py: {stray}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`-n N` (dist "load"): each test its own unit of work, except `SHARED_FIXTURE`'s groups;
    the unit with the most tests goes first (xdist's scope scheduling, reordered by default).
    (xdist's own `xdist_group` marks do not group on pytest 9.2: they rename node ids through an
    attribute pytest no longer reads.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtures(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    return SharedFixtures(config, log)


def pytest_sessionfinish(session) -> None:
    """On a pytest-xdist worker: hand this worker's malformed-input counts to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["malformed_tried"] = dict(MALFORMED_TRIED)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """On the pytest-xdist controller: add up what each worker tried."""
    MALFORMED_TRIED.update(getattr(node, "workeroutput", {}).get("malformed_tried", {}))


def pytest_terminal_summary(terminalreporter) -> None:
    if MALFORMED_TRIED:
        total = sum(MALFORMED_TRIED.values())
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(MALFORMED_TRIED.items()))
        terminalreporter.write_line(f"malformed inputs tried by the property tests: {total} ({parts})")


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
    tests read it; under pytest-xdist one worker runs them all, `SHARED_FIXTURE`). Shortened to
    keep it to minutes: the pipeline is under test here, not how well each method forgets (that
    is `make test-slow` and `make demo`)."""
    from loka.verify.measure import VerifySettings
    from loka.workflows.demo import run_demo

    quick = {m: {"epochs": 3} for m in ("gradient_ascent", "grad_diff", "npo", "task_vector",
                                         "counterexample")}
    quick |= {"loka": {"max_rounds": 3}, "loka-ft": {"steps": 30}}
    return run_demo("tiny", tmp_path_factory.mktemp("tiny-demo"), progress=False, settings=quick,
                    verify_settings=VerifySettings(relearn_steps=10, relearn_eval_every=5),
                    command="loka demo --preset tiny")
