"""The report from a results dict alone: figures, self-contained HTML, Markdown, honest caveats."""

from __future__ import annotations

from loka.report import write_report
from loka.report.figures import comparison_figures
from loka.report.html import inline
from loka.report.verdicts import caveats, general_caveats
from tests.report_helpers import assert_self_contained, assert_valid_png, fake_results


def test_report_files_and_embedding(tmp_path):
    paths = write_report(fake_results(), tmp_path, command="loka demo --preset tiny")
    html = paths["html"].read_text()
    assert_self_contained(html)
    figures = sorted((tmp_path / "figures").glob("*.png"))
    assert {p.name for p in figures} == {"tradeoff.png", "mia_roc_loss.png", "probe_by_layer.png",
                                         "relearning.png"}
    for png in figures:
        assert_valid_png(png)
        assert f"figures/{png.name}" in paths["markdown"].read_text()
    assert html.count("data:image/png;base64,") == len(figures)
    assert "&lt;boom&gt;" in html and "<boom>" not in html  # error text is escaped
    for text in ("How to read this", "retrain", "output_suppression", "loka demo --preset tiny"):
        assert text in html


def test_output_suppression_is_exposed():
    notes = caveats(fake_results())
    assert "loka-ft" not in notes  # probe and relearn near retrain's: nothing to flag
    flagged = " ".join(notes["output_suppression"])
    assert "suppressed at the output, not removed" in flagged and "comes back" in flagged
    assert notes["broken"] == ["did not run: ValueError: <boom>"]


def test_missing_references_are_said_plainly(tmp_path):
    results = fake_results()
    del results["methods"]["retrain"]
    for entry in results["methods"].values():
        entry["mia_auc"] = None
        entry.pop("curves", None)
    text = " ".join(general_caveats(results))
    assert "No retrain model: retrain-relative metrics" in text
    assert "membership inference was skipped" in text
    made = comparison_figures(results, tmp_path)
    assert set(made) == {"tradeoff"}  # no curves: no empty plots


def test_inline_marks_are_escaped_first():
    assert inline("**a** `<b>`") == "<b>a</b> <code>&lt;b&gt;</code>"


def test_a_damaged_model_is_said_with_its_numbers_everywhere(tmp_path):
    """Whatever its forget columns say, a damaged model gets "model damaged" with both ratios in
    the caveats, the demo's terminal summary and the report, never a clean verdict."""
    import io

    from rich.console import Console

    from loka.report.terminal import print_summary
    from loka.verify.measurements.damage import damage_of

    results = fake_results()
    results["methods"]["loka-ft"]["damage"] = damage_of(0.3, 0.9, 40.0, 10.0)  # 0.33 of base, 4x
    results["methods"]["output_suppression"]["damage"] = damage_of(0.9, 0.9, 10.0, 10.0)
    notes = caveats(results)
    assert any(n.startswith("model damaged: retain-eval accuracy 0.33 of the base model's, "
                            "perplexity 4.0x") for n in notes["loka-ft"])
    assert not any("model damaged" in n for n in notes["output_suppression"])
    out = io.StringIO()
    paths = write_report(results, tmp_path)
    print_summary(results, paths["html"], 1.0, console=Console(file=out, width=200))
    line = [ln for ln in out.getvalue().splitlines() if ln.startswith("! loka-ft")]
    assert line and "model damaged" in line[0]
    html = paths["html"].read_text()
    assert "model damaged: retain-eval accuracy 0.33" in html
