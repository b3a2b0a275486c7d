"""Failure handling: a writer killed mid-way (SIGKILL, in a subprocess) leaves the previous state
intact and loadable; disk-full and unwritable outputs are clear errors.

Divergence (NaN weights) is covered where the guard lives: tests/methods/test_baselines.py
(every optimisation baseline forced to diverge keeps finite weights) and the localized loop's
tests in tests/methods/test_localized.py.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from loka.errors import CheckpointWriteError
from loka.io.checkpoint import save_checkpoint
from loka.io.stale import recover
from loka.world.cache import ensure_entry

ROOT = Path(__file__).resolve().parents[2]


def _run_until(code: str, marker: str, *args: str) -> None:
    """Start ``code`` in a fresh interpreter; SIGKILL it as soon as it prints ``marker``."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    try:
        for line in child.stdout:  # type: ignore[union-attr]
            if line.strip() == marker:
                child.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail(f"the child never reached {marker}: {child.stderr.read()[-2000:]}")  # type: ignore[union-attr]
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


_CHILD_SAVE = """
    import sys, time
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from loka.io.checkpoint import save_checkpoint
    src, target = sys.argv[1:]
    model, tok = AutoModelForCausalLM.from_pretrained(src), AutoTokenizer.from_pretrained(src)
    original = tok.save_pretrained  # weights written into the temp dir, tokenizer next

    def stall(*args, **kwargs):
        original(*args, **kwargs)
        print("WRITING", flush=True)
        time.sleep(600)

    tok.save_pretrained = stall
    save_checkpoint(model, target, method="m", source=src, tokenizer=tok)
"""

_CHILD_SWAP = """
    import os, sys, time
    from pathlib import Path
    from loka.io.atomic import staged_dir
    target = Path(sys.argv[1])
    real = os.replace

    def replace(src_path, dst_path):  # between moving the old one aside and moving the new one in
        real(src_path, dst_path)
        if str(dst_path).endswith("entry"):
            print("SWAPPING", flush=True)
            time.sleep(600)

    os.replace = replace
    with staged_dir(target) as tmp:
        (tmp / "data.txt").write_text("new")
"""


def test_killed_while_writing_a_checkpoint_leaves_nothing_under_its_name(neox_dir, tmp_path):
    target = tmp_path / "ckpt-out"
    _run_until(_CHILD_SAVE, "WRITING", str(neox_dir), str(target))
    assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ckpt-out.tmp-"), leftovers
    # The next save to the same place removes the dead writer's temp dir and succeeds.
    model, tok = AutoModelForCausalLM.from_pretrained(neox_dir), AutoTokenizer.from_pretrained(neox_dir)
    save_checkpoint(model, target, method="m", source=neox_dir, tokenizer=tok)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-out"]
    reloaded = AutoModelForCausalLM.from_pretrained(target)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(),
                                                 model.state_dict().values(), strict=True))
    assert json.loads((target / "loka_manifest.json").read_text())["method"] == "m"


def test_killed_between_the_two_renames_is_recovered(tmp_path):
    target = tmp_path / "entry-out"
    target.mkdir()
    (target / "data.txt").write_text("old")
    _run_until(_CHILD_SWAP, "SWAPPING", str(target))
    assert not target.exists()  # the one moment with nothing under the name...
    moved = [p for p in tmp_path.iterdir() if p.name.startswith(".entry-out.old-")]
    assert len(moved) == 1 and (moved[0] / "entry" / "data.txt").read_text() == "old"  # ...kept aside
    actions = recover(target)  # what the next write to the same target does first
    assert any("restored" in a for a in actions)
    assert (target / "data.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["entry-out"]


_CHILD_CACHE = """
    import sys, time
    from pathlib import Path
    from loka.world.cache import ensure_entry

    def build(tmp):
        (tmp / "half.bin").write_bytes(b"x" * 1000)
        print("BUILDING", flush=True)
        time.sleep(600)

    ensure_entry(Path(sys.argv[1]), build, "test entry")
"""


def test_killed_cache_build_is_rebuilt_and_its_leftovers_removed(tmp_path):
    entry = tmp_path / "cache" / "world"
    _run_until(_CHILD_CACHE, "BUILDING", str(entry))
    assert not entry.exists()
    assert any(p.name.startswith(".world.tmp-") for p in entry.parent.iterdir())

    def build(tmp: Path) -> dict:
        (tmp / "data.txt").write_text("complete")
        return {"ok": True}

    assert ensure_entry(entry, build, "test entry") == {"ok": True}  # the dead child's lock is gone
    assert (entry / "data.txt").read_text() == "complete"
    assert not any(p.name.startswith(".world.tmp-") for p in entry.parent.iterdir())


def test_disk_full_and_unwritable_outputs_are_clear_errors(neox_dir, tmp_path):
    model, tok = AutoModelForCausalLM.from_pretrained(neox_dir), AutoTokenizer.from_pretrained(neox_dir)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    tok.save_pretrained = disk_full
    with pytest.raises(CheckpointWriteError, match="No space left on device"):
        save_checkpoint(model, tmp_path / "full", method="m", source=neox_dir, tokenizer=tok)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(CheckpointWriteError, match="cannot write"):
        save_checkpoint(model, blocker / "out", method="m", source=neox_dir)


def test_sequential_cli_refuses_an_unwritable_out_before_any_work(tmp_path, capsys):
    from loka.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["sequential", "--preset", "tiny", "--methods", "gradient_ascent",
                 "--out", str(blocker / "out")]) == 2
    assert "cannot write the output directory" in capsys.readouterr().err
