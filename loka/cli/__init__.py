"""The ``loka`` command line: one subcommand module per pipeline stage.

Errors the user can fix print one line (``loka: error: ...``) and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable

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


def run(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a subcommand, turning user-fixable failures into one line and exit code 2."""
    try:
        return int(func(args) or 0)
    except LokaError as exc:
        print(f"loka: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loka: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            msg = f"no space left on the device writing {exc.filename or 'output'}; free space or choose another --out"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            msg = f"cannot write {exc.filename or 'output'}: permission denied; choose a writable location"
        elif isinstance(exc, FileNotFoundError):
            msg = f"no such file or directory: {exc.filename}"
        else:
            raise
        print(f"loka: error: {msg}", file=sys.stderr)
        return 2


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every temporary file and child process is cleaned up."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    args = build_parser().parse_args(argv)
    return run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
