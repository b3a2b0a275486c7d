"""`run_demo`: the whole pipeline in one call — attribute, edit (every method), verify, report.

On a world (``preset``): build or load it, rank the base model's components with attribution
patching (forget vs retain-train facts), run and verify every method with `compare` (retrain is
the gold standard; ``workers`` single-threaded processes, default one per core), then draw the
figures and write ``report.html`` / ``report.md``. On user data
(``model`` + ``forget`` + ``retain`` [+ ``holdout``]): the same, with no retrain model, and the
heatmap's ranking is computed as loka-ft's own (which then reuses it: one attribution, not two).

Example:
    >>> out = run_demo("tiny", "loka-demo-tiny", methods=["base", "retrain", "loka-ft"])  # doctest: +SKIP
    >>> out.paths["html"], out.results["methods"]["loka-ft"]["forget_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution import Ranking, rank, tokenize_facts
from loka.errors import LokaError
from loka.io.atomic import write_text
from loka.io.outputs import check_output
from loka.memory import release_freed_memory
from loka.methods.localized.common import gradient_batch_size, rankings_reused
from loka.methods.registry import parse_methods
from loka.verify.measure import VerifySettings


@dataclass(frozen=True)
class DemoOutput:
    """What a demo wrote: its directory, the results, the ranking and every file by name."""

    out: Path
    results: dict[str, Any]
    ranking: Ranking | None  # None only for a report redrawn without attribution
    paths: dict[str, Path]
    seconds: float


def _say(progress: bool, text: str) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True).print(f"[bold cyan]loka demo[/] {text}")


def check_methods(methods: Sequence[str] | None, user_data: bool) -> list[str] | None:
    """Refuse unknown method names (and ``retrain`` on user data) before any work is done."""
    if methods is None:
        return None
    names = parse_methods(",".join(methods))
    if user_data and names and "retrain" in names:
        raise LokaError("no retrain model for user data: drop 'retrain' from --methods")
    return names


def attribute(model: str | Path, forget: Sequence[Any], retain: Sequence[Any],
              placement: Any = None) -> Ranking:
    """Attribution-patching ranking of every neuron and head of ``model``: forget vs retain facts."""
    from loka.io.models import load_bridge

    bridge = load_bridge(model, placement=placement)
    try:
        batches = [tokenize_facts(bridge.tokenizer, [f.prompt for f in facts],
                                  [f.answer for f in facts], max_len=bridge.cfg.n_ctx)
                   for facts in (forget, retain)]
    except ValueError as exc:
        raise LokaError(f"cannot tokenise the facts for attribution: {exc}") from None
    # Attribution patching keeps every hooked activation and the graph of a whole minibatch:
    # 64 facts suit the world's 4 layers, not a 30-layer Llama (6.8 GB peak on SmolLM2-135M).
    forget_batch, retain_batch = batches
    ranking = rank(bridge, forget_batch, retain_batch, method="atp", batch_size=gradient_batch_size(bridge.cfg, most=64))
    del bridge
    release_freed_memory()
    return ranking


def attribute_as_loka_ft(model: str | Path, task: Any, placement: Any = None) -> Ranking:
    """Attribution patching of every neuron and head of ``model`` exactly as ``loka-ft`` ranks
    with its defaults (forget vs the retain facts it sees, shuffled with seed 0; its ablation,
    sample and minibatch). Inside `rankings_reused` loka-ft then takes its ranking from this one
    instead of computing it again (SmolLM2: ~24 s saved; the same ranking bit for bit)."""
    from loka.io.models import load_bridge
    from loka.methods.localized.common import LocalizedConfig, fact_batches, rank_on
    from loka.methods.localized.finetune import Config as LokaFtConfig

    ft = LokaFtConfig()
    bridge = load_bridge(model, placement=placement)
    forget, retain = fact_batches(bridge.tokenizer, task, max_len=bridge.cfg.n_ctx, seed=0)
    cfg = LocalizedConfig(kinds="neuron,head", ranking_method=ft.ranking_method, weight=ft.weight)
    ranking = rank_on(bridge, forget, retain, cfg, ablation=ft.ablation, sample=ft.rank_sample)
    del bridge
    release_freed_memory()
    return ranking


REPORT_FILES = frozenset({"figures", "ranking.json", "results.json", "report.html", "report.md"})


def is_report_dir(path: Path) -> bool:
    """A directory a demo may write into again: empty, holding an earlier demo's report, or
    only what a demo writes (one killed half-way: its ``figures/``, ``ranking.json``, ...)."""
    names = {p.name for p in path.iterdir()}
    return (path / "results.json").is_file() or (path / "report.html").is_file() or all(
        n in REPORT_FILES or (n.startswith(".") and ".tmp-" in n) for n in names)


def prepare_out(out: str | Path, sources: Sequence[str | Path | None] = ()) -> Path:
    """The report directory, checked (never a model or the cache) and created."""
    path = check_output(out, kind="dir", sources=sources, what="report directory",
                        reusable=is_report_dir)
    (path / "figures").mkdir(parents=True, exist_ok=True)
    return path


def run_demo(preset: str | None = "default", out: str | Path = "loka-demo",
             methods: Sequence[str] | None = None, *, model: str | Path | None = None,
             forget: str | Path | None = None, retain: str | Path | None = None,
             holdout: str | Path | None = None, settings: dict[str, dict[str, Any]] | None = None,
             verify_settings: VerifySettings | None = None, progress: bool = True,
             command: str | None = None, workers: int | None = None,
             placement: Any = None) -> DemoOutput:
    """Attribute, run every method, verify, report (module docstring); returns what it wrote."""
    from loka.report import write_report

    t0 = time.perf_counter()
    user = model is not None
    if user and (forget is None or retain is None):
        raise LokaError("user data needs --model, --forget and --retain (and optionally --holdout)")
    if not user and (forget or retain or holdout):
        raise LokaError("--forget/--retain/--holdout need --model (your model to unlearn from)")
    names = check_methods(methods, user)
    from loka.methods import names as registered
    from loka.workflows.compare import check_settings
    from loka.workflows.user_data import compare_user, user_data, user_methods

    settings = check_settings(names or (user_methods() if user else registered(compare_only=True)),
                              settings or {})
    common: dict[str, Any] = {"settings": settings, "verify_settings": verify_settings, "progress": progress}
    if model is not None:
        data, task = user_data(model, forget, retain, holdout)  # type: ignore[arg-type]
        path = prepare_out(out, sources=[model])
        _say(progress, f"[1/4] read your data: {len(task.forget)} forget facts; model {model}")
        _say(progress, "[2/4] attribution patching: forget vs retain facts")
        with rankings_reused():  # loka-ft's own ranking is this one: computed once
            ranking = attribute_as_loka_ft(model, task, placement)
            write_text(path / "ranking.json", ranking.to_json())
            _say(progress, "[3/4] running and verifying every method (no retrain model)")
            results = compare_user(model, data, task, names, out=path / "results.json",
                                   placement=placement, **common)
    else:
        from loka.workflows.compare import compare
        from loka.world.build import load_world
        from loka.world.spec import get_spec

        get_spec(preset or "default")  # an unknown preset fails before anything is written
        path = prepare_out(out)
        _say(progress, f"[1/4] world {preset}: building or loading base and retrain models")
        art = load_world(preset or "default", progress=progress)
        _say(progress, "[2/4] attribution patching of the base model: forget vs retain-train facts")
        ranking = attribute(art.base_dir, art.world.facts("forget"), art.world.facts("retain_train"))
        write_text(path / "ranking.json", ranking.to_json())
        _say(progress, "[3/4] running and verifying every method against the retrain model")
        results = compare(art, names, out=path / "results.json", workers=workers, **common)
    _say(progress, "[4/4] drawing figures and writing the report")
    paths = write_report(results, path, ranking, command)
    paths["results"], paths["ranking"] = path / "results.json", path / "ranking.json"
    return DemoOutput(path, results, ranking, paths, time.perf_counter() - t0)
