"""The ``loka`` command line: one subcommand module per pipeline stage.

Errors the user can fix print one line (``loka: error: ...``) and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from collections.abc import Callable

from loka import signals
from loka.errors import LokaError

# Each module exposes ``register(subparsers)`` and sets ``func`` on its parsers.
_COMMAND_MODULES = ("loka.cli.world", "loka.cli.verify", "loka.cli.demo", "loka.cli.attribute", "loka.cli.unlearn",
                    "loka.cli.sequential", "loka.cli.models")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="loka",
        description="Localized Knowledge Ablation: find, edit and verify the components that carry knowledge.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def as_os_error(exc: BaseException) -> OSError | None:
    """``exc`` as an `OSError`: the Rust writers (safetensors, tokenizers) raise their own types
    with the OS's reason in the message, e.g. ``File too large (os error 27)``."""
    if isinstance(exc, OSError):
        return exc
    m = re.search(r"\(os error (\d+)\)", str(exc))
    return OSError(int(m.group(1)), os.strerror(int(m.group(1)))) if m else None


def _os_message(exc: OSError) -> str | None:
    where = exc.filename or "the output"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"no space to write {where} ({exc.strerror}: disk full, quota or file-size limit); "
                "free space or choose another --out")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: permission denied; choose a writable location"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or directory: {exc.filename}"
    if exc.errno is not None:  # the machine's problem (I/O error, name too long): say which
        return f"{exc.strerror or exc} ({where})"
    return None


def _interrupted() -> int:
    print("loka: interrupted; nothing half-written was kept", file=sys.stderr)
    return 130


def run(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a subcommand, turning user-fixable failures into one line and exit code 2."""
    try:
        return int(func(args) or 0)
    except LokaError as exc:
        print(f"loka: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        os_exc = as_os_error(exc)
        msg = _os_message(os_exc) if os_exc is not None else None
        if msg is None:
            raise
        print(f"loka: error: {msg}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Installed before the subcommands' imports (seconds of torch), so a signal then is clean too.
    with signals.installed():
        try:
            try:
                parser = build_parser()  # reads the method registry (and $LOKA_PLUGINS) for --help
            except LokaError as exc:
                print(f"loka: error: {_one_line(exc)}", file=sys.stderr)
                return 2
            args = parser.parse_args(argv)
            code = run(args.func, args)
            if code == 0:
                signals.check()  # a signal whose exception a library swallowed: never exit 0 after it
            return code
        except KeyboardInterrupt:  # during the imports, or a swallowed one re-raised by check()
            return _interrupted()


if __name__ == "__main__":
    sys.exit(main())
