"""Group 6 of the issue: checkpoints, manifests and data files changed after the model was saved.

``loka verify --json`` must list each problem in ``warnings`` (and ``--strict`` refuse), and a
claim it cannot trust (a refusal filter the sealed manifest does not cover) must not change the
numbers: a model that still knows its facts never reads as erased.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.hostile import oracles
from bench.hostile.harness import Case, run_in_process

KNOWS = 0.5  # the gradient_ascent checkpoint (one epoch) still answers most forget facts


def _unlearned(ctx: Any, method: str = "gradient_ascent", *settings: str) -> Path:
    """A checkpoint of M made from case-local copies of the data files: ``{case}/c``."""
    for name in ("forget", "retain"):
        shutil.copy(ctx.p(name), ctx.case / f"{name}.jsonl")
    argv = ["unlearn", "--method", method, "--model", ctx.paths["M"], "--forget", str(ctx.case / "forget.jsonl"),
            "--retain", str(ctx.case / "retain.jsonl"), "--out", str(ctx.case / "c")]
    for s in settings:
        argv += ["--set", s]
    run = run_in_process(argv, {}, ctx.case)
    if run.rc:
        raise RuntimeError(f"setup failed: {run.stderr[-500:]}")
    return ctx.case / "c"


def _manifest(c: Path, edit: Callable[[dict[str, Any]], None], reseal: bool = False) -> None:
    from loka.io.manifest import seal

    m = json.loads((c / "loka_manifest.json").read_text())
    edit(m)
    (c / "loka_manifest.json").write_text(json.dumps(seal(m) if reseal else m))


def _flip_weights(c: Path) -> None:
    w = c / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-100:-96] = b"\x00\x00\x80\x3f"  # one float set to 1.0
    w.write_bytes(bytes(data))


def _filter_file(subjects: list[str]) -> Callable[[Path], object]:
    return lambda c: (c / "loka_refusal_filter.json").write_text(json.dumps({"subjects": subjects}))


def _emptied_and_resealed(ctx: Any, c: Path) -> None:
    from loka.io.checkpoint import file_sha256

    _filter_file([])(c)
    _manifest(c, lambda m: m.update(refusal_filter_sha256=file_sha256(c / "loka_refusal_filter.json")),
              reseal=True)


def _subjects(ctx: Any) -> list[str]:
    return sorted({json.loads(line)["subject"] for line in ctx.p("forget").read_text().splitlines()})


# name -> (tampering of ``{case}/c`` given the context, what the warning says, the forget bound)
def _fifo_source(ctx: Any, c: Path) -> None:
    os.mkfifo(ctx.case / "fifo")
    _manifest(c, lambda m: m.update(source_model=str(ctx.case / "fifo")), reseal=True)


TAMPERS: dict[str, tuple[Callable[[Any, Path], object], str, dict[str, float]]] = {
    "one weight changed": (lambda ctx, c: _flip_weights(c), "modified after saving", {}),
    "the base weights swapped in": (lambda ctx, c: shutil.copy(ctx.p("M") / "model.safetensors", c),
                                    "modified after saving", {}),
    "a data file edited": (lambda ctx, c: (ctx.case / "forget.jsonl").write_text(
        ctx.p("forget").read_text().replace("Thornwick", "Velmora")), "has changed", {}),
    "a data file removed": (lambda ctx, c: (ctx.case / "retain.jsonl").unlink(), "no longer exists", {}),
    "params_changed edited": (lambda ctx, c: _manifest(c, lambda m: m["result"].update(params_changed=0)),
                              "edited after saving", {}),
    "method edited": (lambda ctx, c: _manifest(c, lambda m: m.update(method="retrain")),
                      "edited after saving", {}),
    "seconds edited": (lambda ctx, c: _manifest(c, lambda m: m["result"].update(seconds=0.001)),
                       "edited after saving", {}),
    "a refusal filter in the manifest's metrics": (
        lambda ctx, c: _manifest(c, lambda m: m["metrics"].update(refusal_filter={"subjects": _subjects(ctx)})),
        "edited after saving", {"min_forget": KNOWS}),
    "a refusal filter in the metrics, resealed": (
        lambda ctx, c: _manifest(c, lambda m: m["metrics"].update(refusal_filter={"subjects": _subjects(ctx)}),
                                 reseal=True), "", {"min_forget": KNOWS}),
    "a refusal filter file the manifest does not cover": (
        lambda ctx, c: _filter_file(_subjects(ctx))(c), "refusal filter", {"min_forget": KNOWS}),
    # A checkpoint without a manifest is any HF model: no warning in --json, an error with --strict.
    "the manifest removed": (lambda ctx, c: (c / "loka_manifest.json").unlink(), "", {}),
    "a data file path pointing at /dev/zero": (
        lambda ctx, c: _manifest(c, lambda m: m["provenance"]["data_files"][0].update(path="/dev/zero")),
        "not a regular file", {}),
    "a source model path pointing at a FIFO": (lambda ctx, c: _fifo_source(ctx, c), "source model", {}),
}


def _tampered(tamper: Callable[[Any, Path], object], method: str = "gradient_ascent",
              *settings: str) -> Callable[[Any], None]:
    def setup(ctx: Any) -> None:
        tamper(ctx, _unlearned(ctx, method, *(settings or ("epochs=1",))))
    return setup


_FILES = ("--forget", "{forget}", "--retain", "{retain}")


def cases() -> list[Case]:
    out = []
    for name, (tamper, warns, bounds) in TAMPERS.items():
        argv = ("verify", "--model", "{case}/c", *_FILES, "--json")
        out.append(Case("6 provenance", f"verify --json: {name}", argv, expect="ok",
                        oracle=oracles.verify_json(warns=warns or None, **bounds), setup=_tampered(tamper),
                        quick=name == "a refusal filter in the manifest's metrics"))
        if warns or name == "the manifest removed":
            out.append(Case("6 provenance", f"verify --strict: {name}", (*argv, "--strict"),
                            setup=_tampered(tamper), says="provenance|manifest", max_seconds=30))
    out += [
        Case("6 provenance", "verify a suppression model whose filter was emptied",
             ("verify", "--model", "{case}/c", *_FILES, "--json"), expect="either",
             oracle=oracles.verify_json(warns="refusal filter", min_forget=KNOWS),
             setup=_tampered(lambda ctx, c: _filter_file([])(c), "output_suppression", "refusal=No.")),
        Case("6 provenance", "verify a suppression model whose filter was emptied and resealed",
             ("verify", "--model", "{case}/c", *_FILES, "--json"), says="refusal filter",
             setup=_tampered(_emptied_and_resealed, "output_suppression", "refusal=No.")),
        Case("6 provenance", "verify a suppression model whose filter is gone",
             ("verify", "--model", "{case}/c", *_FILES, "--json"), expect="either",
             oracle=oracles.verify_json(warns="refusal filter", min_forget=KNOWS),
             setup=_tampered(lambda ctx, c: (c / "loka_refusal_filter.json").unlink(), "output_suppression",
                             "refusal=No.")),
        Case("6 provenance", "verify an intact suppression model",
             ("verify", "--model", "{case}/c", *_FILES, "--json"), expect="ok",
             oracle=oracles.verify_json(max_forget=0.2),
             setup=_tampered(lambda ctx, c: None, "output_suppression", "refusal=No.")),
        Case("6 provenance", "verify: a manifest that is not JSON", ("verify", "--model", "{case}/c", "--json"),
             says="manifest", setup=_tampered(lambda ctx, c: (c / "loka_manifest.json").write_text("{"))),
        Case("6 provenance", "verify: a manifest naming a bogus world",
             ("verify", "--model", "{case}/c", "--json"), says="preset",
             setup=_tampered(lambda ctx, c: _manifest(c, lambda m: m["provenance"].update(
                 data_files=[], world={"preset": "bogus", "seed": 1}), reseal=True))),
    ]
    return out
