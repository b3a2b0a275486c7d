"""Results in the terminal: the comparison's wide table, and the demo's compact closing summary.

`print_results` prints every headline column of ``results.json`` (``loka compare``, ``loka
verify``); `print_summary` keeps the columns that decide a verdict, the caveats and where the
report is, readable in a 100-column terminal (``loka demo``).

Example:
    >>> print_summary(results, Path("loka-demo/report.html"), seconds=312.0)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loka.report.tables import cell, get
from loka.report.verdicts import caveats, tagged_caveats
from loka.verify.registry import columns as registry_columns

# How the closing summary names each measurement's caveat (others by their own name).
TAGS = {"run": "did not run", "cost": "diverged or a refusal filter", "probes": "a probe still reads it",
        "relearn": "relearning brings it back", "damage": "model damaged",
        "queries": "one phrasing or direction only", "quantization": "quantization brings it back",
        "icl": "in-context examples bring it back", "benign_relearn": "benign fine-tuning brings it back",
        "logit_lens": "readable in earlier layers"}

STYLE = {"excellent": "green", "minimal": "green", "good": "yellow", "moderate": "yellow",
         "insufficient": "red", "significant": "red"}


def _columns(flag: str) -> list[tuple[str, str]]:
    """``(header, path)`` of the registered columns marked ``wide`` or ``summary``."""
    return [(c.header, c.key) for c in registry_columns() if getattr(c, flag)]


def results_table(results: dict[str, Any], title: str | None = None) -> Table:
    """The headline metrics of every method in ``results["methods"]`` (a failed one shows its error)."""
    world = results.get("world", {})
    table = Table(title=title or f"LOKA compare on the {world.get('preset', '?')} world")
    wide = _columns("wide")
    table.add_column("method", no_wrap=True)
    for header, _ in wide:
        table.add_column(header, justify="right")
    for name, entry in results["methods"].items():
        if entry.get("error"):
            table.add_row(f"{name} [red](error)[/red]", *["-"] * len(wide))
            continue
        cells = [cell(get(entry, path)) for _, path in wide]
        table.add_row(name + (" [yellow](diverged)[/yellow]" if entry.get("diverged") else ""), *cells)
    return table


def print_results(results: dict[str, Any]) -> None:
    """Print the table (wide even when piped: 16 columns do not fit 80), errors and warnings."""
    import sys

    console = Console(width=None if sys.stdout.isatty() else 180)
    console.print(results_table(results))
    for name, entry in results["methods"].items():
        if entry.get("error"):
            console.print(f"[red]{name}[/red]: {entry['error']}", highlight=False)
        for warning in entry.get("warnings") or []:
            console.print(f"[yellow]{name}: warning[/yellow]: {warning}", highlight=False)


def summary_table(results: dict[str, Any]) -> Table:
    """One row per method with the verdict-deciding columns; caveated methods marked with ``!``."""
    flagged = caveats(results)
    columns = _columns("summary")
    table = Table(title=f"LOKA demo — {results.get('world', {}).get('preset', '?')}",
                  caption="! = see the caveats below; every metric is in the report")
    table.add_column("method", no_wrap=True)
    for header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    for name, entry in results["methods"].items():
        if entry.get("error"):
            table.add_row(f"[red]{name}[/]", f"[red]did not run: {entry['error'][:60]}[/]")
            continue
        cells = [cell(get(entry, path)) for _, path in columns]
        cells = [f"[{STYLE[c]}]{c}[/]" if c in STYLE else c for c in cells]
        table.add_row(name + (" [yellow]![/]" if name in flagged else ""), *cells)
    return table


def print_summary(results: dict[str, Any], report: Path, seconds: float,
                  console: Console | None = None) -> None:
    """The table, one line per caveated method, and the report's path."""
    console = console or Console(width=None if Console().is_terminal else 120)
    console.print(summary_table(results))
    for name, notes in tagged_caveats(results).items():
        tags = list(dict.fromkeys(TAGS.get(measurement, measurement) for measurement, _ in notes))
        console.print(f"[yellow]![/] [bold]{name}[/]: {'; '.join(tags)}", highlight=False)
    if caveats(results):
        console.print("  (suppressed is not removed: the report's Caveats section gives the numbers)")
    console.print(f"\nreport: [bold]{report.resolve()}[/]\n        (report.md, results.json, "
                  f"ranking.json and figures/ beside it) — {seconds:.0f} s", highlight=False)
