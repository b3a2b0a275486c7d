"""Reliability tests: one torch thread (small matrices; shared cores)."""

from __future__ import annotations

import pytest

from tests.helpers import one_torch_thread


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    with one_torch_thread():
        yield

