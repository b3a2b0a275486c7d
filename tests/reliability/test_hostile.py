"""Issue 20's hostile inputs, replayed: no traceback, nothing silently wrong, no file lost.

The default suite checks only that the case tables cover the issue (the promises themselves, on
their smallest inputs, are `test_issue20.py`); `make test-slow` replays a representative subset
(``Case.quick``: a few of every group, a few minutes) and every case (``python -m bench.hostile``
prints the same counts).
"""

from __future__ import annotations

import pytest

from bench.hostile import all_cases, replay


def _assert_clean(out: dict) -> None:
    bad = [f"{r['outcome']}: {r['group']} | {r['name']}: {r['detail']}" for r in out["cases"]
           if r["outcome"] not in ("clean_error", "correct")]
    assert not bad, "\n".join(bad)


def test_the_case_tables_cover_the_issue():
    cases = all_cases()
    groups = {c.group.split()[0] for c in cases}
    assert len(cases) >= 306 and groups >= set("12345678"), (len(cases), groups)
    assert {c.group.split()[0] for c in cases if c.quick} >= set("124678")


@pytest.mark.slow
def test_a_representative_subset_replays_cleanly(tiny_world, tmp_path):
    out = replay([c for c in all_cases() if c.quick], tmp_path, progress=False)
    assert out["summary"]["tried"] >= 40
    _assert_clean(out)


@pytest.mark.slow
def test_every_hostile_case_replays_cleanly(tiny_world, tmp_path):
    out = replay(all_cases(), tmp_path, progress=False)
    s = out["summary"]
    assert (s["traceback"], s["silent_wrong"], s["data_lost"]) == (0, 0, 0), s
    _assert_clean(out)
