"""Reliability tests: one torch thread (small matrices; shared cores), malformed-input counts."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.helpers import one_torch_thread

# Malformed inputs each property test tried, by loader; reported at the end of the run.
MALFORMED_TRIED: Counter[str] = Counter()


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    with one_torch_thread():
        yield


def pytest_terminal_summary(terminalreporter) -> None:
    if MALFORMED_TRIED:
        total = sum(MALFORMED_TRIED.values())
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(MALFORMED_TRIED.items()))
        terminalreporter.write_line(f"malformed inputs tried by the property tests: {total} ({parts})")
