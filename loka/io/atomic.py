"""The one atomic writer: every file and directory LOKA writes appears whole or not at all.

A file is written to a hidden temporary sibling (``.<name>.tmp-<host>-<pid>-XXXX``), flushed,
and renamed over its target; a directory (a checkpoint, a cache entry) is built in such a sibling
and renamed into place once complete. On any failure — an exception, Ctrl-C, SIGTERM (the CLI
turns it into an exception) — the temporary is removed; after SIGKILL it is left behind and
`loka.io.stale.recover` removes it the next time the same target is written. JSON is strict: NaN
or infinity anywhere is an error, never a silent token.

Example:
    >>> write_json("out/results.json", {"forget_accuracy": 0.02})      # doctest: +SKIP
    >>> with staged_dir("out/edited") as tmp:                           # doctest: +SKIP
    ...     model.save_pretrained(tmp)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loka import signals
from loka.io.stale import recover, temp_prefix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (parents created); returns the path."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target, "tmp"), dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; outputs get the user's usual mode
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Render a matplotlib figure as PNG and write it atomically; the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return write_bytes(path, buffer.getvalue())


def dumps(obj: Any) -> str:
    """Strict, readable JSON: indented, UTF-8 as is, NaN and infinity refused."""
    return json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Replace ``path`` with ``obj`` as strict JSON, atomically."""
    return write_text(path, dumps(obj))


def usual_modes(directory: Path) -> None:
    """Give ``directory`` and everything in it the user's usual modes (umask): writers such as
    mkdtemp and safetensors create 0700 / 0600, which other users of a shared model cannot read."""
    os.chmod(directory, _DIR_MODE)
    for here, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(here, name), _DIR_MODE)
        for name in files:
            path = os.path.join(here, name)
            if not os.path.islink(path):
                os.chmod(path, _FILE_MODE)


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``target``; on a clean exit move it into place.

    An existing ``target`` is replaced only once the new directory is complete: it is moved aside
    first, so a crash leaves the old directory or the new one under the name, never a mixture.
    The caller decides beforehand whether replacing is allowed (`loka.io.outputs`).
    """
    final = Path(target).expanduser()
    final.parent.mkdir(parents=True, exist_ok=True)
    recover(final)  # a writer killed earlier: restore what it moved aside, drop its leftovers
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final, "tmp"), dir=final.parent))
    try:
        yield tmp
        usual_modes(tmp)
        signals.check()  # an interrupt something swallowed: the output must not become final
        _move_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, target: Path) -> None:
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        with contextlib.suppress(FileNotFoundError):
            target.rmdir()  # an empty directory is replaced as if absent
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=temp_prefix(target, "old"), dir=target.parent))
    os.replace(target, old / "entry")
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old / "entry", target)
        raise
    finally:
        if not (old / "entry").exists() or target.exists():
            shutil.rmtree(old, ignore_errors=True)
