"""Rich tables of verification results: one row per method (compare) or one report (verify).

Example:
    >>> Console().print(results_table(json.load(open("results.json"))))   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

COLUMNS: tuple[tuple[str, str], ...] = (
    ("forget", "forget_accuracy"), ("retain", "retain_accuracy"), ("holdout", "holdout_accuracy"),
    ("QA forget", "heldout_template_forget_accuracy"), ("MIA LOSS", "mia_auc.loss"),
    ("PrivLeak %", "privleak"), ("KS p", "forget_quality"), ("probe", "probe_accuracy"),
    ("relearn", "relearn_accuracy"), ("extract", "extraction.exact_match_rate"),
    ("ppl", "perplexity"), ("s", "seconds"), ("params", "params_changed"),
    ("grade", "grades.forget_quality"), ("privacy", "grades.privacy_leakage"),
)


def _get(entry: dict[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.2e}" if value != 0 and abs(value) < 1e-3 else f"{value:.3g}"
    return str(value)


def print_results(results: dict[str, Any]) -> None:
    """Print the table (wide even when piped: 16 columns do not fit 80) and any method errors."""
    import sys

    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 180)
    console.print(results_table(results))
    for name, entry in results["methods"].items():
        if entry.get("error"):
            console.print(f"[red]{name}[/red]: {entry['error']}", highlight=False)


def results_table(results: dict[str, Any], title: str | None = None) -> Table:
    """The headline metrics of every method in ``results["methods"]`` (a failed one shows its error)."""
    world = results.get("world", {})
    table = Table(title=title or f"LOKA compare on the {world.get('preset', '?')} world")
    table.add_column("method", no_wrap=True)
    for header, _ in COLUMNS:
        table.add_column(header, justify="right")
    for name, entry in results["methods"].items():
        if entry.get("error"):
            table.add_row(f"{name} [red](error)[/red]", *["-"] * len(COLUMNS))
            continue
        cells = [_fmt(_get(entry, path)) for _, path in COLUMNS]
        table.add_row(name + (" [yellow](diverged)[/yellow]" if entry.get("diverged") else ""), *cells)
    return table
