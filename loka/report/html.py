"""Render a `Report` as ONE self-contained HTML file: inline CSS, figures as base64 data URIs.

Nothing is fetched when the file opens (no scripts, fonts or remote images), so it can be
attached to an erasure request and read offline.

Example:
    >>> Path("report.html").write_text(to_html(report, base_dir=Path("loka-demo")))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from loka.report.content import Figure, Report, Section
from loka.report.tables import Table

CSS = """
body{font:15px/1.5 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1d232b;
 margin:0;background:#f4f5f7}
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:28px;margin:8px 0 0}h2{font-size:21px;margin:34px 0 8px;padding-top:10px;
 border-top:2px solid #e3e6ea}
.sub{color:#5b6570;margin:2px 0 18px}
.how{background:#eef4fb;border-left:4px solid #4a7fc1;padding:8px 12px;margin:8px 0 14px;
 font-size:14px}
.caveats li{margin:4px 0}
.scroll{overflow-x:auto;margin:10px 0 4px}
table{border-collapse:collapse;font-size:13.5px;font-variant-numeric:tabular-nums}
th,td{padding:5px 9px;border-bottom:1px solid #e3e6ea;text-align:right;white-space:nowrap}
th{background:#f0f2f5;font-weight:600;position:sticky;top:0}
td:first-child,th:first-child{text-align:left;font-weight:600}
tr.ref td{background:#f7f7f2;color:#444}
tr.failed td{color:#a33}
tr td.g-excellent,tr td.g-minimal{color:#137333;font-weight:600}
tr td.g-good,tr td.g-moderate{color:#9a6700;font-weight:600}
tr td.g-insufficient,tr td.g-significant{color:#b3261e;font-weight:600}
.notes{font-size:12.5px;color:#5b6570;margin:2px 0 12px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:22px;margin:12px 0}
figure{margin:0}figure img{max-width:100%;height:auto;border:1px solid #e3e6ea}
figcaption{font-size:13.5px;color:#38414b;margin-top:4px}
figcaption b{display:block;font-size:15px;color:#1d232b;margin-bottom:2px}
code{background:#f0f2f5;padding:1px 4px;border-radius:3px;font-size:13px;word-break:break-all}
"""
GRADES = ("excellent", "good", "insufficient", "minimal", "moderate", "significant")


def inline(text: str) -> str:
    """Escape ``text``, then turn ``**bold**`` and backquoted code into tags."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _td(text: str) -> str:
    cls = f' class="g-{text}"' if text in GRADES else ""
    return f"<td{cls}>{html.escape(text)}</td>"


def table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    rows = []
    for row in table.rows:
        cls = " class=ref" if row[0] in ("base", "retrain") else \
            " class=failed" if len(row) > 1 and row[1] == "did not run" else ""
        rows.append(f"<tr{cls}>" + "".join(_td(c) for c in row) + "</tr>")
    notes = "".join(f"<div>{inline(n)}</div>" for n in table.notes)
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            f'</tbody></table></div>' + (f'<div class="notes">{notes}</div>' if notes else ""))


def _figure(f: Figure, base_dir: Path) -> str:
    src = data_uri(base_dir / f.file)
    return (f'<figure><img src="{src}" alt="{html.escape(f.caption)}">'
            f"<figcaption><b>{inline(f.title)}</b>{inline(f.caption)}</figcaption></figure>")


def _section(section: Section, base_dir: Path) -> str:
    parts = [f"<section><h2>{inline(section.title)}</h2>"]
    if section.how_to_read:
        parts.append(f'<div class="how"><b>How to read this.</b> {inline(section.how_to_read)}</div>')
    parts += [f"<p>{inline(p)}</p>" for p in section.paragraphs]
    if section.bullets:
        items = "".join(f"<li>{inline(b)}</li>" for b in section.bullets)
        parts.append(f'<ul class="caveats">{items}</ul>')
    parts += [table_html(t) for t in section.tables]
    if section.figures:
        parts.append('<div class="figs">' + "".join(_figure(f, base_dir) for f in section.figures)
                     + "</div>")
    return "".join(parts) + "</section>"


def to_html(report: Report, base_dir: Path) -> str:
    """The report as one HTML page; figure files are read from ``base_dir`` and embedded."""
    body = "".join(_section(s, base_dir) for s in report.sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(report.title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{html.escape(report.title)}</h1><p class=sub>{inline(report.subtitle)}</p>"
            f"{body}</main></body></html>\n")
