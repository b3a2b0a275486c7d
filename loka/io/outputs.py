"""Where LOKA may write: every output path is checked here, before any work is done.

A target is refused when it is, or lies inside, a model checkpoint directory or LOKA's cache, or
when it contains one of the models being read (replacing it would delete that model); a file
target that is a directory, or ends with ``/``; a symlink; a model file name (``*.safetensors``,
``*.bin``, ``*.gguf``, ``config.json``), for a directory too. The parent is created and probed for writability now,
so a read-only location fails in a second, not after minutes of training.

Example:
    >>> out = check_output("edited/", kind="dir", sources=["ckpt/base"])      # doctest: +SKIP
    >>> out = check_output("ranking.json", kind="file")                       # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from loka.errors import LokaError

MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "loka_manifest.json")
MODEL_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt")


def cache_path() -> Path:
    """LOKA's cache directory (``$LOKA_CACHE`` or ``~/.cache/loka``), not created here."""
    return Path(os.environ.get("LOKA_CACHE") or Path.home() / ".cache" / "loka").expanduser()


def is_model_dir(path: Path) -> bool:
    """A Hugging Face checkpoint (or a LOKA-saved one): config, weights or a manifest."""
    return path.is_dir() and (any((path / f).is_file() for f in MODEL_FILES)
                              or any(p.is_file() for p in path.glob("*.safetensors")))


def _inside(path: Path, other: Path) -> bool:
    return path == other or path.is_relative_to(other)


def _model_ancestor(path: Path) -> Path | None:
    for p in (path, *path.parents):
        if is_model_dir(p):
            return p
    return None


def _refuse(out: str | os.PathLike[str], why: str, what: str) -> LokaError:
    return LokaError(f"refusing to write {what} {out}: {why}; choose a new location")


def check_output(out: str | os.PathLike[str], *, kind: Literal["file", "dir"],
                 sources: Sequence[str | os.PathLike[str] | None] = (), what: str = "output",
                 reusable: Callable[[Path], bool] | None = None) -> Path:
    """The resolved target, or `LokaError` saying why it must not be written.

    ``sources``: the models (directories) this run reads; ``reusable(dir)``: whether an
    existing non-empty directory may be written into (a previous report of the same kind).
    """
    text = os.fspath(out)
    if not text.strip():
        raise LokaError(f"the {what} path is empty")
    path = Path(text).expanduser()
    if path.is_symlink():
        raise _refuse(text, "it is a symbolic link (its real location could be a model)", what)
    target = path.resolve()
    protected = [Path(s).expanduser().resolve() for s in sources if s is not None and Path(s).expanduser().exists()]
    protected.append(cache_path().resolve())
    for p in protected:
        if _inside(target, p):
            where = "LOKA's cache" if p == protected[-1] else f"the model directory {p}"
            raise _refuse(text, f"it is inside {where}", what)
        if _inside(p, target) and target.exists():
            raise _refuse(text, f"it contains {p}, which this run reads", what)
    model_dir = _model_ancestor(target if target.is_dir() else target.parent)
    if model_dir is not None:
        raise _refuse(text, f"{model_dir} is a model checkpoint directory", what)
    if target.name in MODEL_FILES or target.suffix in MODEL_SUFFIXES:  # a directory too: tools
        raise _refuse(text, "its name is a model file's", what)        # globbing weights find it
    if kind == "file":
        if text.endswith(("/", os.sep)) or target.is_dir():
            raise LokaError(f"the {what} {text} is a directory; give a file name (e.g. {Path(text) / 'out.json'})")
        _probe(target.parent, text, what)
    else:
        if target.exists() and not target.is_dir():
            raise LokaError(f"the {what} {text} exists and is not a directory; choose a new directory")
        if target.is_dir() and any(target.iterdir()) and not (reusable and reusable(target)):
            raise LokaError(f"the {what} {text} exists and is not empty; choose a new directory")
        _probe(target if target.is_dir() else target.parent, text, what)
    return target


def _probe(directory: Path, text: str, what: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".loka-probe-"):
            pass
    except OSError as exc:
        raise LokaError(f"cannot write the {what} {text}: {exc.strerror or exc} "
                        f"({directory}); choose a writable location") from None
