"""Oracles: what makes an exit-0 result right. Each returns why it is wrong, or None.

    checkpoint("{out}")      reloads, every weight and output finite, sealed manifest with the
                             method and provenance, the refusal filter where one belongs
    ranking("{out}", "M")    loads as a `Ranking` made on that model
    verify_json(...)         one JSON object with numbers, the warnings a case expects
    report("{out}")          report.html and results.json, every method ran
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.hostile.harness import Run

Oracle = Callable[[Run, Any], "str | None"]


def _modes(directory: Path) -> str | None:
    """Outputs get the user's usual modes (umask), not mkstemp's 0600 / mkdtemp's 0700."""
    for p in [directory, *directory.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        if not mode & stat.S_IRGRP:
            return f"{p} was created {oct(mode)}: not readable by the group despite the umask"
    return None


def check_checkpoint_dir(directory: Path) -> str | None:
    """Why ``directory`` is not a complete, finite, sealed LOKA checkpoint (None when it is)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loka.errors import LokaError
    from loka.evaluate import outputs_finite
    from loka.io.checkpoint import REFUSAL_FILTER, non_finite_weights
    from loka.io.manifest import read_manifest, seal_problem
    from loka.io.models import check_checkpoint

    if not directory.is_dir():
        return f"no checkpoint at {directory}"
    try:
        check_checkpoint(directory)
        manifest = read_manifest(directory)
    except LokaError as exc:
        return f"the saved checkpoint is damaged: {exc}"
    if manifest is None or seal_problem(manifest) or not manifest.get("method"):
        return "the saved checkpoint has no sealed manifest naming its method"
    if not isinstance(manifest.get("provenance"), dict):
        return "the saved checkpoint's manifest has no provenance"
    if manifest["method"] == "output_suppression" and not (directory / REFUSAL_FILTER).is_file():
        return "an output_suppression checkpoint without its refusal filter"
    model = AutoModelForCausalLM.from_pretrained(directory)
    bad = non_finite_weights(model)
    if bad:
        return f"a checkpoint with {bad} non-finite weights was saved"
    if not outputs_finite(model, AutoTokenizer.from_pretrained(directory), ["The end.", "Brie Mekmek was born in"]):
        return "a checkpoint whose outputs are not finite was saved"
    return _modes(directory)


def checkpoint(where: str = "{out}") -> Oracle:
    return lambda run, ctx: check_checkpoint_dir(Path(ctx.fmt(where)))


def ranking(where: str = "{out}", model: str | None = None) -> Oracle:
    def check(run: Run, ctx: Any) -> str | None:
        from attribution import Ranking

        path = Path(ctx.fmt(where))
        try:
            r = Ranking.load(path)
        except (OSError, ValueError) as exc:
            return f"the ranking does not load: {exc}"
        if model is not None and Path(r.model_id).resolve() != Path(ctx.fmt(model)).resolve():
            return f"the ranking names model {r.model_id}, not {ctx.fmt(model)}"
        return None if path.is_file() else f"{path} is not a file"

    return check


def _json(text: str) -> dict[str, Any] | None:
    try:
        out = json.loads(text)
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def verify_json(*, warns: str | None = None, min_forget: float | None = None,
                max_forget: float | None = None, files: dict[str, str] | None = None) -> Oracle:
    """`loka verify --json`: one object; ``warns``: a warning must mention it; forget accuracy
    bounds (a model that still knows everything must not read as erased); ``files``: the data
    files it must say it verified against (``{"retain": "{retain}"}``: workspace placeholders)."""
    def check(run: Run, ctx: Any) -> str | None:
        out = _json(run.stdout)
        if out is None:
            return "stdout is not one JSON object"
        acc = out.get("forget_accuracy")
        if not isinstance(acc, int | float):
            return f"no forget_accuracy in the JSON ({acc!r})"
        warnings = out.get("warnings")
        if not isinstance(warnings, list):
            return "no warnings list in the JSON"
        if warns is not None and not any(warns in w for w in warnings):
            return f"no warning mentions {warns!r} (warnings: {warnings[:3]})"
        if min_forget is not None and acc < min_forget:
            return f"forget accuracy {acc:.3f} reads as erasure (the model still knows: >= {min_forget})"
        if max_forget is not None and acc > max_forget:
            return f"forget accuracy {acc:.3f} > {max_forget}"
        used = out.get("user_data") or {}
        for role, want in (files or {}).items():
            if str(used.get(role)) != ctx.fmt(want):
                return f"verified against {role} {used.get(role)!r}, not {ctx.fmt(want)!r}"
        return None

    return check


def results_file(where: str, methods: tuple[str, ...]) -> Oracle:
    """A results.json whose every requested method ran (no ``error`` entry)."""
    def check(run: Run, ctx: Any) -> str | None:
        path = Path(ctx.fmt(where))
        out = _json(path.read_text()) if path.is_file() else None
        if out is None:
            return f"{path} is not one JSON object"
        got = out.get("methods") or {}
        missing = [m for m in methods if m not in got]
        failed = [m for m in methods if m in got and got[m].get("error")]
        if missing or failed:
            return f"methods missing {missing} or failed {failed}: {[got[m]['error'] for m in failed][:1]}"
        return None

    return check


def report(where: str = "{out}", methods: tuple[str, ...] = ("base",)) -> Oracle:
    results = results_file(f"{where}/results.json", methods)

    def check(run: Run, ctx: Any) -> str | None:
        html = Path(ctx.fmt(where)) / "report.html"
        if not (html.is_file() and html.stat().st_size):
            return f"no report at {html}"
        return results(run, ctx)

    return check


def says(text: str, stream: str = "stdout") -> Oracle:
    """Exit 0 and ``text`` printed (a warning the user must see)."""
    return lambda run, ctx: None if text in getattr(run, stream) else f"{stream} does not say {text!r}"


def both(*oracles: Oracle) -> Oracle:
    def check(run: Run, ctx: Any) -> str | None:
        for o in oracles:
            why = o(run, ctx)
            if why:
                return why
        return None

    return check
