"""The retrain reference stored on disk gives exactly the verification the measured one gives,
and any change to what it depends on (settings, code) is a different file, never a stale hit."""

from __future__ import annotations

import pytest

from loka.verify import reference_cache
from loka.verify.data import VerifyData
from loka.verify.loaded import load_model
from loka.verify.measure import Measurements, VerifySettings
from loka.verify.reference_cache import reuse_reference
from loka.verify.verifier import verify

FAST = VerifySettings(relearn_steps=10, relearn_eval_every=5, seed=7)


@pytest.fixture(autouse=True)
def own_cache_dir(tmp_path, monkeypatch):
    """Each test keeps its entries in its own folder: the tests of this module write the same
    entry on purpose, and on parallel workers they would otherwise overwrite each other's."""
    shared = reference_cache.cache_path
    monkeypatch.setattr(reference_cache, "cache_path",
                        lambda reference, artifacts: tmp_path / shared(reference, artifacts).name)


def _report(world, data, reference):
    out = verify(world.base_dir, data, retrain=reference, base=world.base_dir, name="base",
                 settings=FAST).to_dict()
    return {k: v for k, v in out.items() if "seconds" not in k}


def _base(world, data):
    return Measurements(load_model(world.base_dir, name="base"), data, FAST)


def test_a_stored_reference_verifies_exactly_like_a_measured_one(tiny_world):
    data = VerifyData.from_world(tiny_world)
    measured = Measurements(load_model(tiny_world.retrain_dir, name="retrain"), data, FAST)
    path = reference_cache.cache_path(measured, tiny_world)
    path.unlink(missing_ok=True)
    assert reuse_reference(measured, _base(tiny_world, data), tiny_world) is False and path.is_file()
    stored = Measurements(load_model(tiny_world.retrain_dir, name="retrain"), data, FAST)
    assert reuse_reference(stored, _base(tiny_world, data), tiny_world) is True
    assert _report(tiny_world, data, stored) == _report(tiny_world, data, measured)
    other = Measurements(stored.model, data, VerifySettings(relearn_steps=11))
    assert reference_cache.cache_path(other, tiny_world) != path  # other settings: another entry


@pytest.mark.parametrize("text", ["{", '{"mia": 1}', "[]"])
def test_an_unreadable_entry_is_measured_again_and_replaced(tiny_world, text):
    data = VerifyData.from_world(tiny_world)
    reference = Measurements(load_model(tiny_world.retrain_dir, name="retrain"), data, FAST)
    path = reference_cache.cache_path(reference, tiny_world)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert reuse_reference(reference, _base(tiny_world, data), tiny_world) is False
    assert reuse_reference(Measurements(reference.model, data, FAST), _base(tiny_world, data), tiny_world) is True
