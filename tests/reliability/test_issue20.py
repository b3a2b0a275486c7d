"""Issue 20's promises, each on the smallest input that broke it (fast; the full replay of every
hostile case is `tests/reliability/test_hostile.py` and ``python -m bench.hostile``).

1. No non-finite model is saved or measured as erasure: a rescale factor that overflows float32,
   task_vector's ``scale=1e300``, finite weights whose outputs overflow.
2. No model is overwritten: ``attribute``, ``compare`` and ``demo --out`` refuse the source
   model, a path inside it and the cache.
3. Workers die with their parent, also when it dies while they still import.
4. Damaged checkpoints and OS errors from Rust writers are one-line errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from loka.errors import CheckpointWriteError, LokaError

ROOT = Path(__file__).resolve().parents[2]


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    from loka.cli import main

    rc = main(argv)
    return rc, capsys.readouterr().err


def _digests(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


# --- 1. non-finite ---------------------------------------------------------------------------


def test_a_rescale_factor_that_overflows_float32_is_refused_and_undone(random_checkpoints):
    from transformer_lens.model_bridge import TransformerBridge

    from attribution.components import Component
    from loka.engine import AblationPlan, commit
    from loka.engine.errors import PlanError

    bridge = TransformerBridge.boot_transformers(str(random_checkpoints["gpt_neox"]), device="cpu")
    before = {k: v.clone() for k, v in bridge.original_model.state_dict().items()}
    plan = AblationPlan.rescale([Component(0, "neuron", 1), Component(1, "head", 0)], 1e39)  # a finite float
    with pytest.raises(PlanError, match="non-finite.*float32"):
        commit(bridge, plan)
    after = bridge.original_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the refused edit was not undone"


def _overflowing(src: Path, dst: Path) -> Path:
    """``src`` with finite weights whose logits overflow float32 (issue 20: ``scale=1e38``)."""
    model: Any = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        model.gpt_neox.final_layer_norm.weight.mul_(1e30)
        model.get_output_embeddings().weight.mul_(1e10)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    model.save_pretrained(dst)
    for f in src.glob("*token*"):
        shutil.copy(f, dst / f.name)
    return dst


def test_finite_weights_with_overflowing_outputs_are_never_verified(neox_dir, tmp_path):
    from loka.verify.loaded import load_model

    bad = _overflowing(neox_dir, tmp_path / "overflow")
    with pytest.raises(LokaError, match="outputs are not"):
        load_model(bad)


def test_a_model_with_overflowing_outputs_is_never_saved(neox_dir, tmp_path):
    from transformers import AutoTokenizer

    from loka.io.checkpoint import save_checkpoint

    model = AutoModelForCausalLM.from_pretrained(_overflowing(neox_dir, tmp_path / "overflow"))
    with pytest.raises(CheckpointWriteError, match="outputs"):
        save_checkpoint(model, tmp_path / "saved", method="gradient_ascent", source=str(neox_dir),
                        tokenizer=AutoTokenizer.from_pretrained(neox_dir))
    assert not (tmp_path / "saved").exists()


def test_task_vector_scale_1e300_is_diverged_and_refuses_to_save(tiny_world, tmp_path):
    from loka.methods import task_from_world, unlearn

    task = task_from_world(tiny_world)
    # With the retain budget (the default) the scale that breaks retain is never applied.
    kept = unlearn(tiny_world.base_dir, task, method="task_vector", progress=False, scale=1e300, steps=3)
    assert not kept.diverged and all(torch.isfinite(p).all() for p in kept.model.parameters())
    assert any("retain budget" in note for note in kept.notes)
    # Without it, the case: all weights non-finite -> diverged, never saved.
    result = unlearn(tiny_world.base_dir, task, method="task_vector", progress=False, scale=1e300, steps=3,
                     retain_budget=None)
    assert result.diverged and result.non_finite
    with pytest.raises(CheckpointWriteError, match="not saved"):
        result.save(tmp_path / "tv", source=tiny_world.base_dir)
    assert not (tmp_path / "tv").exists()


# --- 2. no model overwritten -----------------------------------------------------------------


@pytest.fixture
def user_model(tiny_world, tmp_path) -> Path:
    m = shutil.copytree(tiny_world.base_dir, tmp_path / "M", ignore=shutil.ignore_patterns("loka_cache.json"))
    for name, split in (("forget", "forget"), ("retain", "retain_train")):
        shutil.copy(tiny_world.facts_file(split), tmp_path / f"{name}.jsonl")
    return m


@pytest.mark.parametrize("target", ["{M}/model.safetensors", "{M}", "{M}/ranking.json", "{entry}/r.json"])
def test_attribute_out_never_writes_over_or_into_a_model(user_model, tiny_world, target, capsys):
    m, before = user_model, _digests(user_model)
    out = target.format(M=m, entry=tiny_world.root)
    rc, err = _cli(["attribute", "--model", str(m), "--forget", str(m.parent / "forget.jsonl"),
                    "--retain", str(m.parent / "retain.jsonl"), "--out", out], capsys)
    assert rc == 2 and "refusing" in err, err
    assert _digests(m) == before and not (tiny_world.root / "r.json").exists()


@pytest.mark.parametrize("target", ["{M}/model.safetensors", "{M}/results.json", "{base}/results.json"])
def test_compare_out_never_writes_into_a_model(user_model, tiny_world, target, capsys):
    m, before = user_model, _digests(user_model)
    t0 = time.perf_counter()
    rc, err = _cli(["compare", "--preset", "tiny", "--methods", "base", "--out",
                    target.format(M=m, base=tiny_world.base_dir)], capsys)
    assert rc == 2 and "refusing" in err and time.perf_counter() - t0 < 20, err
    assert _digests(m) == before


@pytest.mark.parametrize("target", ["{M}", "{M}/report", "{entry}", "{base}"])
def test_demo_out_never_is_the_model_or_a_cache_entry(user_model, tiny_world, target, capsys):
    m, before = user_model, _digests(user_model)
    base_before = _digests(tiny_world.base_dir)
    rc, err = _cli(["demo", "--model", str(m), "--forget", str(m.parent / "forget.jsonl"),
                    "--retain", str(m.parent / "retain.jsonl"), "--methods", "base", "--out",
                    target.format(M=m, entry=tiny_world.root, base=tiny_world.base_dir)], capsys)
    assert rc == 2 and "refusing" in err, err
    assert _digests(m) == before and _digests(tiny_world.base_dir) == base_before


# --- 3. children die with their parent --------------------------------------------------------


def test_a_worker_whose_parent_died_while_it_imported_exits(tmp_path):
    """The parent starts a child that takes 2 s to reach its initializer (as a spawned worker
    importing torch does) and is killed after 0.5 s: the child must not train on as an orphan."""
    pidfile = tmp_path / "child.pid"
    child = textwrap.dedent(f"""
        import os, sys, time
        parent = int(sys.argv[1])
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        time.sleep(2)  # "importing": the parent is killed meanwhile
        from loka.children import die_with_parent
        die_with_parent(parent)
        time.sleep(30)
    """)
    parent = textwrap.dedent(f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {child!r}, str(os.getpid())])
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=ROOT, start_new_session=True)
    for _ in range(100):
        if pidfile.is_file() and pidfile.read_text():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    pid = int(pidfile.read_text())
    deadline = time.time() + 6
    while time.time() < deadline and Path(f"/proc/{pid}").exists() and \
            "zombie" not in Path(f"/proc/{pid}/status").read_text().lower():
        time.sleep(0.1)
    alive = Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    if alive:
        import os
        import signal

        os.kill(pid, signal.SIGKILL)
    assert not alive, "the orphaned worker kept running after its parent was killed"


# --- 4. one-line errors -----------------------------------------------------------------------


def test_os_errors_raised_by_rust_writers_are_one_line(capsys):
    import argparse

    from loka.cli import run

    class SafetensorError(Exception):  # safetensors' own type carries the OS's reason in its text
        pass

    def save(_: argparse.Namespace) -> int:
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                              "message: \"No space left on device\" }) (os error 28)")

    assert run(save, argparse.Namespace()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space" in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["missing tensor", "negative layers", "broken tokenizer"])
def test_damaged_checkpoints_are_refused_before_loading(neox_dir, tmp_path, damage):
    from safetensors.torch import load_file, save_file

    from loka.io.models import check_checkpoint

    d = shutil.copytree(neox_dir, tmp_path / "d")
    if damage == "missing tensor":
        tensors = load_file(d / "model.safetensors")
        tensors.pop(next(k for k in tensors if "attention" in k))
        save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
        want = "lack"
    elif damage == "negative layers":
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": -1}))
        want = "positive integer"
    else:
        (d / "tokenizer.json").write_text('{"version": "1.0", "trunc')
        want = "tokenizer is damaged"
    with pytest.raises(LokaError, match=want):
        check_checkpoint(d)


def test_a_refusal_filter_dropped_in_by_hand_is_ignored_with_a_warning(neox_dir, tmp_path):
    from loka.io.checkpoint import REFUSAL_FILTER, save_checkpoint
    from loka.verify.loaded import load_model

    model = AutoModelForCausalLM.from_pretrained(neox_dir)
    from transformers import AutoTokenizer

    out = save_checkpoint(model, tmp_path / "saved", method="gradient_ascent", source=str(neox_dir),
                          tokenizer=AutoTokenizer.from_pretrained(neox_dir))
    (out / REFUSAL_FILTER).write_text(json.dumps({"subjects": ["Mira"], "refusal": "I don't know"}))
    loaded = load_model(out)
    assert loaded.refusal is None
    assert any(REFUSAL_FILTER in w and "ignored" in w for w in loaded.warnings), loaded.warnings


# --- 5. saves ---------------------------------------------------------------------------------


def test_a_saved_checkpoint_has_the_users_usual_modes(neox_dir, tmp_path):
    """mkdtemp and safetensors create 0700 / 0600: a shared model would be unreadable by the
    group whatever the umask says (issue 20, group 8)."""
    from transformers import AutoTokenizer

    import loka.io.atomic as atomic
    from loka.io.checkpoint import save_checkpoint

    if atomic._FILE_MODE == 0o600:
        pytest.skip("the umask is 077: 0600 is the usual mode here")
    out = save_checkpoint(AutoModelForCausalLM.from_pretrained(neox_dir), tmp_path / "saved",
                          method="gradient_ascent", source=str(neox_dir),
                          tokenizer=AutoTokenizer.from_pretrained(neox_dir))
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert out.stat().st_mode & 0o777 == atomic._DIR_MODE
    assert set(modes.values()) == {atomic._FILE_MODE}, modes
