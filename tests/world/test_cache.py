import json

import pytest

from loka.world.cache import STAMP, ensure_entry, entry_problem


def _builder(calls):
    def build(tmp):
        calls.append(tmp)
        (tmp / "weights.bin").write_bytes(b"\x01" * 64)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "config.json").write_text("{}")
        return {"n": len(calls)}

    return build


def test_entry_is_built_once_then_reused(tmp_path):
    calls = []
    entry = tmp_path / "entry"
    assert ensure_entry(entry, _builder(calls), "thing") == {"n": 1}
    assert ensure_entry(entry, _builder(calls), "thing") == {"n": 1}
    assert len(calls) == 1 and entry_problem(entry) is None


@pytest.mark.parametrize("damage", ["flip_byte", "delete_file", "remove_stamp", "extra_file"])
def test_corrupt_or_partial_entry_is_detected_and_rebuilt(tmp_path, damage):
    calls = []
    entry = tmp_path / "entry"
    ensure_entry(entry, _builder(calls), "thing")
    if damage == "flip_byte":
        (entry / "weights.bin").write_bytes(b"\x01" * 63 + b"\x02")
    elif damage == "delete_file":
        (entry / "sub" / "config.json").unlink()
    elif damage == "remove_stamp":
        (entry / STAMP).unlink()
    else:
        (entry / "stray.tmp").write_text("half")
    assert entry_problem(entry) is not None
    with pytest.warns(UserWarning, match="unusable"):
        meta = ensure_entry(entry, _builder(calls), "thing")
    assert meta == {"n": 2} and entry_problem(entry) is None


def test_failed_build_leaves_nothing_behind(tmp_path):
    def explode(tmp):
        (tmp / "half.bin").write_bytes(b"\x00")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_entry(tmp_path / "entry", explode, "thing")
    assert [p.name for p in tmp_path.iterdir()] == [".entry.lock"]  # only the builders' lock


def test_world_files_are_exported_in_the_documented_format(tiny_world):
    rows = [json.loads(line) for line in tiny_world.facts_file("forget").read_text().splitlines()]
    assert rows and set(rows[0]) == {"prompt", "answer", "subject", "attribute"}
    passages = [json.loads(line) for line in tiny_world.passages_file("forget").read_text().splitlines()]
    assert passages and set(passages[0]) == {"text"}
