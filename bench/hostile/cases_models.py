"""Groups 4 and 7 of the issue: damaged and unsupported checkpoints x every command reading one.

Each damage is a function applied to a fresh copy of the source model in the case directory;
every command must refuse the result with one line naming what is wrong, before loading it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.hostile.harness import Case

_DATA = ("--forget", "{forget}", "--retain", "{retain}")
COMMANDS: dict[str, tuple[str, ...]] = {
    "unlearn": ("unlearn", "--method", "gradient_ascent", "--model", "{X}", *_DATA, "--set", "epochs=1",
                "--out", "{out}"),
    "attribute": ("attribute", "--model", "{X}", *_DATA, "--out", "{case}/r.json"),
    "verify": ("verify", "--model", "{X}", *_DATA, "--json"),
    "ablate": ("ablate", "--model", "{X}", "--ranking", "{rankM}", "--top", "3", "--allow-other-model",
               "--out", "{out}"),
    "demo": ("demo", "--model", "{X}", *_DATA, "--methods", "base", "--out", "{out}"),
}


def _weights(m: Path) -> Path:
    return m / "model.safetensors"


def _truncate(m: Path) -> None:
    data = _weights(m).read_bytes()
    _weights(m).write_bytes(data[: len(data) // 2])


def _header_only(m: Path) -> None:
    data = _weights(m).read_bytes()
    n = int.from_bytes(data[:8], "little")
    _weights(m).write_bytes(data[: 8 + n])


def _huge_header(m: Path) -> None:
    data = _weights(m).read_bytes()
    _weights(m).write_bytes((2**60).to_bytes(8, "little") + data[8:])


def _bad_header_json(m: Path) -> None:
    data = _weights(m).read_bytes()
    n = int.from_bytes(data[:8], "little")
    _weights(m).write_bytes(data[:8] + b"{" * n + data[8 + n:])


def _renamed_tensor(m: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(_weights(m))
    first = sorted(tensors)[0]
    tensors["not." + first] = tensors.pop(first)
    save_file(tensors, _weights(m), metadata={"format": "pt"})


def _wrong_shape(m: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(_weights(m))
    name = next(n for n in sorted(tensors) if n.endswith("embed_in.weight"))
    tensors[name] = tensors[name][:-5].contiguous()
    save_file(tensors, _weights(m), metadata={"format": "pt"})


def _config(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], object]:
    def damage(m: Path) -> None:
        cfg = json.loads((m / "config.json").read_text())
        out = edit(cfg)
        (m / "config.json").write_text(json.dumps(cfg if out is None else out))
    return damage


def _write(name: str, data: bytes) -> Callable[[Path], object]:
    return lambda m: (m / name).write_bytes(data)


def _remove(*names: str) -> Callable[[Path], object]:
    def damage(m: Path) -> None:
        for n in names:
            (m / n).unlink()
    return damage


def _pickle_only(m: Path) -> None:
    _weights(m).rename(m / "pytorch_model.bin")


DAMAGES: list[tuple[str, Callable[[Path], object], str | None]] = [  # name, damage, the error names
    ("truncated weights", _truncate, "safetensors"),
    ("empty weights", _write("model.safetensors", b""), "safetensors"),
    ("random weights bytes", _write("model.safetensors", os.urandom(4096)), "safetensors"),
    ("weights header only", _header_only, None),
    ("header length 2**60", _huge_header, "safetensors"),
    ("header not JSON", _bad_header_json, "safetensors"),
    ("a tensor renamed", _renamed_tensor, None),
    ("embedding 5 rows short", _wrong_shape, None),
    ("no weights file", _remove("model.safetensors"), "safetensors"),
    ("pickle weights only", _pickle_only, "unpickle"),
    ("no config.json", _remove("config.json"), "config"),
    ("config.json not JSON", _write("config.json", b"{not json"), "config"),
    ("config.json a list", _write("config.json", b"[1, 2]"), "config"),
    ("config.json in latin-1", _write("config.json", '{"model_type": "gpt_neox", "x": "\xe9"}'.encode("latin-1")),
     "config"),
    ("no model_type", _config(lambda c: c.pop("model_type") and None), "architecture"),
    ("model_type mamba", _config(lambda c: c.update(model_type="mamba")), "architecture"),
    ("hidden_size 10**6", _config(lambda c: c.update(hidden_size=10**6, intermediate_size=4 * 10**6)), None),
    ("num_hidden_layers -1", _config(lambda c: c.update(num_hidden_layers=-1)), None),
    ("num_hidden_layers 'two'", _config(lambda c: c.update(num_hidden_layers="two")), None),
    ("vocab_size 10", _config(lambda c: c.update(vocab_size=10)), None),
    ("no tokenizer files", _remove("tokenizer.json", "tokenizer_config.json"), "tokenizer"),
    ("tokenizer.json not JSON", _write("tokenizer.json", b"{oops"), "tokenizer"),
    ("tokenizer.json empty", _write("tokenizer.json", b""), "tokenizer"),
]


def _damaged(damage: Callable[[Path], object]) -> Callable[[Any], None]:
    def setup(ctx: Any) -> None:
        shutil.copytree(ctx.p("M"), ctx.case / "m")
        damage(ctx.case / "m")
    return setup


def _file_model(ctx: Any) -> None:
    shutil.copy(ctx.p("M") / "model.safetensors", ctx.case / "weights.safetensors")


# Models given by path that are not damaged copies: (name, path, setup, error regex)
OTHERS: list[tuple[str, str, Callable[[Any], None] | None, str | None]] = [
    ("a BERT checkpoint", "{bert}", None, "architecture 'bert'"),
    ("a T5 checkpoint", "{t5}", None, r"architecture 't5'(?!.*TransformerBridge)"),
    ("a weights file, not a directory", "{case}/weights.safetensors", _file_model, "directory"),
    ("a missing relative path", "no/such/model", None, "does not exist"),
    ("a missing ./path", "./nope", None, "does not exist"),
    ("a missing absolute path", "/nonexistent/loka/model", None, "does not exist"),
    ("an empty directory", "{case}/empty", lambda ctx: (ctx.case / "empty").mkdir(), "config"),
    ("/dev/null", "/dev/null", None, None),
    ("an empty model name", "", None, None),
]


def cases() -> list[Case]:
    out = []
    for command, argv in COMMANDS.items():
        for name, damage, names in DAMAGES:
            out.append(Case("4 damaged model", f"{command} on {name}",
                            tuple(a.replace("{X}", "{case}/m") for a in argv), says=names,
                            setup=_damaged(damage), max_seconds=30,
                            quick=name in ("truncated weights", "no tokenizer files")))
        for name, path, setup, names in OTHERS:
            group = "7 unsupported" if "checkpoint" in name else "4 damaged model"
            out.append(Case(group, f"{command} on {name}", tuple(a.replace("{X}", path) for a in argv),
                            says=names, setup=setup, max_seconds=30, quick=name == "a BERT checkpoint"))
    return out
