"""The report's tables as plain strings: one `Table` value, rendered by Markdown and HTML alike.

Example:
    >>> t = metric_table(results, "outcome")  # doctest: +SKIP
    >>> t.headers[:3], t.rows[0][:3]                # doctest: +SKIP
    (['method', 'forget ↓', 'retain ↑'], ['base', '0.94', '0.90'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loka.verify.registry import Group
from loka.verify.registry import columns as registry_columns


@dataclass(frozen=True)
class Table:
    """Headers and string cells; ``notes`` are footnotes printed under the table."""

    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def get(entry: dict[str, Any], path: str) -> Any:
    """``entry["a"]["b"]`` for ``"a.b"``; None where any step is missing."""
    value: Any = entry
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def cell(value: Any) -> str:
    """A number as a short string: 3 significant digits, ints with separators, None as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.1e}"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def group_columns(group: Group) -> tuple[tuple[str, str], ...]:
    """``(header with its arrow, dotted path)`` of every registered column of one table."""
    return tuple((c.title(), c.key) for c in registry_columns(group))


def metric_table(results: dict[str, Any], columns: tuple[tuple[str, str], ...] | Group) -> Table:
    """One row per method; a failed method's row says so; null cells explained in the notes.

    ``columns`` is a table of the measurement registry (``"outcome"``, ``"depth"``,
    ``"attacks"``, ``"cost"``) or explicit ``(header, path)`` pairs."""
    if isinstance(columns, str):
        columns = group_columns(columns)
    rows: list[list[str]] = []
    reasons: dict[str, str] = {}
    for name, entry in results["methods"].items():
        if entry.get("error"):
            rows.append([name, "did not run"] + [""] * (len(columns) - 1))
            continue
        rows.append([name] + [cell(get(entry, path)) for _, path in columns])
        for header, path in columns:
            head, _, leaf = path.rpartition(".")
            reason = get(entry, f"{head}.{leaf}_reason" if head else f"{leaf}_reason")
            if get(entry, path) is None and isinstance(reason, str):
                reasons.setdefault(header.split(" ")[0], reason)
    notes = [f"– in {h}: {r}" for h, r in reasons.items()]
    return Table(["method"] + [h for h, _ in columns], rows, notes)


def top_components(ranking_json: dict[str, Any], k: int = 12) -> Table:
    """The ``k`` components with the largest contrast score in a ``ranking.json`` dict."""
    comps = ranking_json["components"]
    contrast = ranking_json["contrast_scores"]
    order = sorted(range(len(comps)), key=lambda i: -contrast[i])[:k]
    rows = [[str(r + 1), comps[i], cell(ranking_json["forget_scores"][i]),
             cell(ranking_json["retain_scores"][i]), cell(contrast[i])] for r, i in enumerate(order)]
    return Table(["rank", "component", "forget effect", "retain effect", "contrast"], rows)
