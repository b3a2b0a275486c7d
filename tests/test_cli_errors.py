"""Bad input gets one line naming the problem and exit code 2, never a traceback."""

import os
import subprocess
import sys

import pytest


def _loka(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "loka", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


def _assert_one_line_error(proc, needle):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert any(needle in line and line.startswith("loka: error:") for line in lines), proc.stderr


def test_unknown_preset():
    _assert_one_line_error(_loka("world", "info", "--preset", "huge"), "unknown preset 'huge'")


def test_unwritable_cache_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
        blocker = tmp_path / "file"
        blocker.write_text("x")
        locked = blocker / "cache"
    _assert_one_line_error(_loka("world", "info", "--preset", "tiny", env={"LOKA_CACHE": str(locked)}),
                           "not writable")


@pytest.mark.parametrize("model", ["./no/such/model-dir", "/nonexistent/checkpoint"])
def test_missing_model_dir(model):
    from loka.errors import LokaError
    from loka.io.models import load_bridge

    with pytest.raises(LokaError, match="does not exist"):
        load_bridge(model)


def _no_dns(monkeypatch) -> None:
    """No host resolves (as on a machine without network), whatever this machine has."""
    import socket

    def fail(*args, **kwargs):
        raise OSError("no network (test)")

    monkeypatch.setattr(socket, "getaddrinfo", fail)


def test_hub_name_in_offline_mode(monkeypatch, tmp_path):
    """The hub library's offline mode (HF_HUB_OFFLINE when it was imported): its own error,
    reworded, and fast; an empty hub cache, so nothing is found locally either."""
    import time

    from huggingface_hub import constants

    from loka.errors import LokaError
    from loka.io.models import load_bridge

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    t0 = time.perf_counter()
    with pytest.raises(LokaError, match="Hugging Face hub"):
        load_bridge("EleutherAI/pythia-160m")
    assert time.perf_counter() - t0 < 20


def test_hub_offline_variable_set_after_import_is_checked_like_no_network(monkeypatch):
    """HF_HUB_OFFLINE set after the hub library was imported (as in a notebook) does not make it
    offline, so loka's DNS check must run: its one-line error, not a minute of retries."""
    from huggingface_hub import constants

    from loka.errors import LokaError
    from loka.io.models import load_bridge

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _no_dns(monkeypatch)
    with pytest.raises(LokaError, match="no network: cannot resolve"):
        load_bridge("EleutherAI/pythia-160m")


def test_hub_name_without_network_fails_fast(monkeypatch):
    """No network: loka's DNS check answers in one line before the hub library retries."""
    from huggingface_hub import constants

    from loka.errors import LokaError
    from loka.io.models import load_bridge

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _no_dns(monkeypatch)
    with pytest.raises(LokaError, match="no network"):
        load_bridge("EleutherAI/pythia-160m")
