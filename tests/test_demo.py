"""`loka demo` end to end on the tiny world, its report, its screenshot, and its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loka.methods import names
from loka.verify.measure import VerifySettings
from loka.verify.verifier import report_keys
from loka.workflows.demo import DemoOutput, run_demo
from tests.report_helpers import assert_self_contained, assert_valid_png, fake_results, strict_json

FAST = VerifySettings(relearn_steps=10, relearn_eval_every=5)  # as the `tiny_demo` fixture
FIGURES = {"attribution_heads.png", "attribution_neurons.png", "attribution_scatter.png",
           "tradeoff.png", "mia_roc_loss.png", "probe_by_layer.png", "relearning.png",
           "benign_relearning.png", "logit_lens.png", "depth.png"}


@pytest.fixture()
def demo(tiny_demo) -> DemoOutput:
    """Every method on the tiny world, run once per session (see ``tests/conftest.py``)."""
    return tiny_demo


def test_results_have_every_method_and_no_nan(demo):
    results = strict_json(demo.out / "results.json")
    assert list(results["methods"]) == names(compare_only=True)
    for name, entry in results["methods"].items():
        assert all(key in entry for key in report_keys()), name
    ran = [n for n, e in results["methods"].items() if not e.get("error")]
    assert {"base", "retrain"} <= set(ran)
    assert results["methods"]["base"]["forget_accuracy"] > results["methods"]["retrain"]["forget_accuracy"]


def test_report_is_self_contained_and_figures_are_pngs(demo):
    html = (demo.out / "report.html").read_text()
    assert_self_contained(html)
    names = {p.name for p in (demo.out / "figures").glob("*.png")}
    assert names == FIGURES
    for name in names:
        assert_valid_png(demo.out / "figures" / name)
        assert f"figures/{name}" in (demo.out / "report.md").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)
    ranking = strict_json(demo.out / "ranking.json")
    assert ranking["method"] == "atp" and len(ranking["components"]) == len(demo.ranking)


def test_screenshot_of_the_report(demo, tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    from screenshot_report import find_chromium, screenshot

    if find_chromium() is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    png = screenshot(demo.out / "report.html", tmp_path / "report.png", size=(1280, 2400))
    assert_valid_png(png)
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("L").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is blank"


@pytest.mark.parametrize("args, words", [
    (("--preset", "nope"), "unknown preset"),
    (("--preset", "tiny", "--methods", "base,no-such-method"), "unknown method"),
    (("--methods", " , "), "--methods is empty"),
    (("--forget", "f.jsonl"), "need --model"),
    (("--model", "/no/such/dir"), "needs --model, --forget and --retain"),
    (("--model", "m", "--forget", "/no/f.jsonl", "--retain", "/no/r.jsonl"), "no such file"),
    (("--preset", "tiny", "--model", "m", "--forget", "f", "--retain", "r"), "one or the other"),
])
def test_bad_input_is_one_line(args, words, tmp_path, capsys):
    from loka.cli import main

    assert main(["demo", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("loka: error:") and words in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written before the input was checked


def test_missing_model_is_one_line_from_the_shell(tiny_world, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "loka", "demo", "--model", "/no/such/dir", "--forget",
         str(tiny_world.facts_file("forget")), "--retain", str(tiny_world.facts_file("retain_train")),
         "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env={**os.environ})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("loka: error:") and "does not exist" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_prints_table_caveats_and_where_the_report_is(monkeypatch, tmp_path, capsys):
    import loka.workflows.demo
    from loka.cli import main
    from loka.report import write_report

    results = fake_results()
    paths = write_report(results, tmp_path)
    monkeypatch.setattr(loka.workflows.demo, "run_demo", lambda *a, **k: DemoOutput(tmp_path, results, None, paths, 1.0))  # type: ignore[arg-type]
    assert main(["demo", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "output_suppression" in out and "a probe still reads it" in out
    assert str((tmp_path / "report.html").resolve()) in out.replace("\n", "")


def test_user_data_mode_says_what_it_cannot_compute(tiny_world, tmp_path):
    out = run_demo(None, tmp_path / "user", ["base"], model=tiny_world.base_dir,
                   forget=tiny_world.facts_file("forget"), retain=tiny_world.facts_file("retain_train"),
                   verify_settings=FAST, progress=False)
    results = strict_json(out.out / "results.json")
    base = results["methods"]["base"]
    assert base["privleak"] is None and base["mia_auc"] is None and base["mia_auc_reason"]
    html = (out.out / "report.html").read_text()
    assert "No retrain model: retrain-relative metrics" in html
    assert "membership inference was skipped" in html
    assert_self_contained(html)
