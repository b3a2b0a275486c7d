"""Reports for people: figures, Markdown and one self-contained HTML file from ``results.json``.

Example:
    >>> paths = write_report(json.load(open("loka-demo/results.json")), "loka-demo",
    ...                      ranking=Ranking.load("loka-demo/ranking.json"))   # doctest: +SKIP
    >>> paths["html"]                                                               # doctest: +SKIP
    PosixPath('loka-demo/report.html')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attribution.ranking import Ranking
from loka.io.atomic import write_text
from loka.report.content import build_report
from loka.report.figures import attribution_figures, comparison_figures
from loka.report.html import to_html
from loka.report.markdown import to_markdown

__all__ = ["write_report"]


def write_report(results: dict[str, Any], out: str | Path, ranking: Ranking | None = None,
                 command: str | None = None) -> dict[str, Path]:
    """Draw ``out/figures/*.png`` and write ``out/report.md`` and ``out/report.html``.

    ``ranking`` (the base model's attribution) adds the attribution section; without it the
    report covers the method comparison only. Returns the paths written, by name.
    """
    out = Path(out)
    figdir = out / "figures"
    figures = comparison_figures(results, figdir)
    ranking_json = None
    if ranking is not None:
        figures = attribution_figures(ranking, figdir) | figures
        ranking_json = ranking.to_dict()
        write_text(out / "ranking.json", ranking.to_json())
    report = build_report(results, figures, ranking_json, command)
    md = write_text(out / "report.md", to_markdown(report))
    page = write_text(out / "report.html", to_html(report, out))
    return {"markdown": md, "html": page} | {f"figure:{k}": v for k, v in figures.items()}
