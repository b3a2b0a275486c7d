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


WIDE: tuple[tuple[str, str], ...] = (
    ("forget", "forget_accuracy"), ("retain", "retain_accuracy"), ("holdout", "holdout_accuracy"),
    ("QA forget", "heldout_template_forget_accuracy"), ("MIA LOSS", "mia_auc.loss"),
    ("PrivLeak %", "privleak"), ("KS p", "forget_quality"), ("probe", "probe_accuracy"),
    ("relearn", "relearn_accuracy"), ("extract", "extraction.exact_match_rate"),
    ("ppl", "perplexity"), ("s", "seconds"), ("params", "params_changed"),
    ("grade", "grades.forget_quality"), ("privacy", "grades.privacy_leakage"),
)


def results_table(results: dict[str, Any], title: str | None = None) -> Table:
    """The headline metrics of every method in ``results["methods"]`` (a failed one shows its error)."""
    world = results.get("world", {})
    table = Table(title=title or f"LOKA compare on the {world.get('preset', '?')} world")
    table.add_column("method", no_wrap=True)
    for header, _ in WIDE:
        table.add_column(header, justify="right")
    for name, entry in results["methods"].items():
        if entry.get("error"):
            table.add_row(f"{name} [red](error)[/red]", *["-"] * len(WIDE))
            continue
        cells = [cell(get(entry, path)) for _, path in WIDE]
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
