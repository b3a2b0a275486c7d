"""Render a `Report` as Markdown; figures are referenced as ``figures/*.png`` beside the file.

Example:
    >>> Path("report.md").write_text(to_markdown(build_report(results, figures)))   # doctest: +SKIP
"""

from __future__ import annotations

from loka.report.content import Report, Section
from loka.report.tables import Table


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> list[str]:
    lines = ["| " + " | ".join(_escape_cell(h) for h in table.headers) + " |",
             "|" + "|".join([":--"] + ["--:"] * (len(table.headers) - 1)) + "|"]
    lines += ["| " + " | ".join(_escape_cell(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines += [""] + [f"<sub>{n}</sub>  " for n in table.notes]
    return lines + [""]


def _section(section: Section) -> list[str]:
    lines = [f"## {section.title}", ""]
    if section.how_to_read:
        lines += [f"> **How to read this.** {section.how_to_read}", ""]
    for p in section.paragraphs:
        lines += [p, ""]
    lines += [f"- {b}" for b in section.bullets] + ([""] if section.bullets else [])
    for t in section.tables:
        lines += table_markdown(t)
    for f in section.figures:
        lines += [f"**{f.title}**", "", f"![{f.title}]({f.file})", "", f"*{f.caption}*", ""]
    return lines


def to_markdown(report: Report) -> str:
    """The whole report as one Markdown document."""
    lines = [f"# {report.title}", "", f"*{report.subtitle}*", ""]
    for section in report.sections:
        lines += _section(section)
    return "\n".join(lines).rstrip() + "\n"
