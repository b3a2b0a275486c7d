"""Group 2 of the issue: where a command may write. Every output option x every dangerous target.

A target is refused (one line, before any work) when it is, lies inside or contains a model
or the cache, is a symlink, a model file name, a directory given for a file, or unwritable;
a few targets are fine for directory outputs and must then give a complete result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.hostile import oracles
from bench.hostile.harness import Case

_DATA = ("--forget", "{forget}", "--retain", "{retain}")

# command -> (argv with {T} for the target, kind of output, oracle for a valid directory target)
COMMANDS: dict[str, tuple[tuple[str, ...], str, Any]] = {
    "attribute": (("attribute", "--model", "{M}", *_DATA, "--out", "{T}"), "file", None),
    "heatmap": (("attribute", "--model", "{M}", *_DATA, "--out", "{case}/r.json", "--heatmap", "{T}"),
                "file", None),
    "compare": (("compare", "--preset", "tiny", "--methods", "base", "--out", "{T}"), "file", None),
    "unlearn": (("unlearn", "--method", "gradient_ascent", "--model", "{M}", *_DATA,
                 "--set", "epochs=1", "--out", "{T}"), "dir", oracles.checkpoint("{T}")),
    "unlearn-world": (("unlearn", "--method", "gradient_ascent", "--preset", "tiny",
                       "--set", "epochs=1", "--out", "{T}"), "dir", oracles.checkpoint("{T}")),
    "ablate": (("ablate", "--model", "{M}", "--ranking", "{rankM}", "--top", "3", "--out", "{T}"),
               "dir", oracles.checkpoint("{T}")),
    "demo": (("demo", "--model", "{M}", *_DATA, "--methods", "base", "--out", "{T}"), "dir", None),
    "sequential": (("sequential", "--preset", "tiny", "--methods", "gradient_ascent", "--batches", "1",
                    "--out", "{T}"), "dir", None),
}


def _link_to(name: str, to: str) -> Any:
    def setup(ctx: Any) -> None:
        os.symlink(ctx.fmt(to), ctx.case / name)
    return setup


def _mkdir(name: str) -> Any:
    return lambda ctx: (ctx.case / name).mkdir(parents=True)


def _file(name: str) -> Any:
    return lambda ctx: (ctx.case / name).write_text("a file, not a directory\n")


# target, what it is, setup, valid for a directory output (then the command must succeed)
TARGETS: list[tuple[str, str, Any, bool]] = [
    ("{M}", "the source model", None, False),
    ("{M}/model.safetensors", "its weights file", None, False),
    ("{M}/config.json", "its config", None, False),
    ("{M}/new.json", "a new file inside it", None, False),
    ("{M}/sub/dir", "a new directory inside it", None, False),
    ("{M}/../M", "the source model via ..", None, False),
    ("{fx}", "a directory holding the source model", None, False),
    ("{cache}", "the cache", None, False),
    ("{entry}", "the world's cache entry", None, False),
    ("{base}", "the world's base model (in the cache)", None, False),
    ("{base}/model.safetensors", "the world's weights", None, False),
    ("{entry}/world/facts/forget.jsonl", "the world's facts", None, False),
    ("{cache}/new-output", "a new path inside the cache", None, False),
    ("{case}/link", "a symlink to the source model", _link_to("link", "{M}"), False),
    ("{case}/flink", "a symlink to its weights", _link_to("flink", "{M}/model.safetensors"), False),
    ("{case}/dangling", "a dangling symlink", _link_to("dangling", "{case}/nowhere"), False),
    ("{ckpt}", "another saved checkpoint", None, False),
    ("", "an empty path", None, False),
    ("{case}/afile/out", "a path under a regular file", _file("afile"), False),
    ("/proc/loka-hostile-out", "an unwritable location", None, False),
    ("{case}/out.safetensors", "a model file name", None, False),
    ("{case}/dir/", "a name ending in /", None, True),
    ("{case}/empty", "an existing empty directory", _mkdir("empty"), True),
]

_SLOW_VALID = ("demo", "sequential", "unlearn-world")  # valid targets cost minutes there: skipped


def cases() -> list[Case]:
    out = []
    for command, (argv, kind, ok_oracle) in COMMANDS.items():
        for target, what, setup, dir_ok in TARGETS:
            valid = kind == "dir" and dir_ok
            if valid and (command in _SLOW_VALID or ok_oracle is None):
                continue
            filled = tuple(a.replace("{T}", target) for a in argv)
            oracle = None
            if valid:
                where = str(Path(target))  # "{case}/dir/" -> "{case}/dir"
                oracle = oracles.checkpoint(where)
            out.append(Case("2 overwrite", f"{command} --out {what}", filled,
                            expect="ok" if valid else "error", oracle=oracle, setup=setup,
                            max_seconds=None if valid else 20.0,
                            quick=target in ("{M}/model.safetensors", "{base}", "{case}/link")))
    return out
