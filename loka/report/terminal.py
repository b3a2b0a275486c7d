"""The demo's closing words in the terminal: a compact rich table, the caveats, where the report is.

The full table (every metric) is in the report; this one keeps the columns that decide a verdict
so it stays readable in a 100-column terminal.

Example:
    >>> print_summary(results, Path("loka-demo/report.html"), seconds=312.0)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loka.report.tables import cell, get
from loka.report.verdicts import caveats

COLUMNS: tuple[tuple[str, str], ...] = (
    ("forget↓", "forget_accuracy"), ("retain↑", "retain_accuracy"), ("MIA AUC", "mia_auc.loss"),
    ("probe↓", "probe_accuracy"), ("relearn↓", "relearn_accuracy"), ("s", "seconds"),
    ("grade", "grades.forget_quality"), ("privacy", "grades.privacy_leakage"),
)
TAGS = (("did not run", "did not run"), ("diverged", "diverged"),
        ("linear probe", "a probe still reads it"), ("comes back", "relearning brings it back"),
        ("refusal filter", "weights unchanged (refusal filter)"))
STYLE = {"excellent": "green", "minimal": "green", "good": "yellow", "moderate": "yellow",
         "insufficient": "red", "significant": "red"}


def summary_table(results: dict[str, Any]) -> Table:
    """One row per method with the verdict-deciding columns; caveated methods marked with ``!``."""
    flagged = caveats(results)
    table = Table(title=f"LOKA demo — {results.get('world', {}).get('preset', '?')}",
                  caption="! = see the caveats below; every metric is in the report")
    table.add_column("method", no_wrap=True)
    for header, _ in COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for name, entry in results["methods"].items():
        if entry.get("error"):
            table.add_row(f"[red]{name}[/]", f"[red]did not run: {entry['error'][:60]}[/]")
            continue
        cells = [cell(get(entry, path)) for _, path in COLUMNS]
        cells = [f"[{STYLE[c]}]{c}[/]" if c in STYLE else c for c in cells]
        table.add_row(name + (" [yellow]![/]" if name in flagged else ""), *cells)
    return table


def print_summary(results: dict[str, Any], report: Path, seconds: float,
                  console: Console | None = None) -> None:
    """The table, one line per caveated method, and the report's path."""
    console = console or Console(width=None if Console().is_terminal else 120)
    console.print(summary_table(results))
    for name, notes in caveats(results).items():
        tags = [tag for key, tag in TAGS if any(key in n for n in notes)]
        console.print(f"[yellow]![/] [bold]{name}[/]: {'; '.join(tags or notes[:1])}", highlight=False)
    if caveats(results):
        console.print("  (suppressed is not removed: the report's Caveats section gives the numbers)")
    console.print(f"\nreport: [bold]{report.resolve()}[/]\n        (report.md, results.json, "
                  f"ranking.json and figures/ beside it) — {seconds:.0f} s", highlight=False)
