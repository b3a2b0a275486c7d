"""A new method and a new measurement are one file each: registered, they appear in `compare`,
the CLI's help, the JSON, the tables and the report without any other file changing."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

import loka.methods.registry as methods
import loka.verify.registry as measurements
from loka.verify.measure import VerifySettings

TOY_METHOD = '''
    from dataclasses import dataclass

    from loka.methods.config import MethodConfig, knob
    from loka.methods.registry import register
    from loka.methods.task import UnlearnResult


    @dataclass(frozen=True)
    class Config(MethodConfig):
        strength: float = knob(1.0, gt=0, help="how hard to do nothing")


    @register("toy", Config, family="baseline", summary="a toy method that changes no weight")
    def toy(model, tokenizer, task, cfg, *, seed, progress):
        return UnlearnResult("toy", model, tokenizer, cfg.to_dict(), seconds=0.0, params_changed=0)
'''
TOY_MEASUREMENT = '''
    from loka.verify.registry import Column, Measurement, register

    register(Measurement(
        "toy_score", keys=("toy_score",), run=lambda ctx: {"toy_score": 0.25},
        columns=(Column("toy_score", "toy score", "outcome", "lower", wide=True, summary=True),),
        caveats=lambda entry, retrain: ["toy caveat"] if entry.get("toy_score") == 0.25 else [],
        doc="a toy measurement"))
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """The two plugin files, importable here and by spawned workers; registries restored after."""
    (tmp_path / "toy_method.py").write_text(textwrap.dedent(TOY_METHOD))
    (tmp_path / "toy_measurement.py").write_text(textwrap.dedent(TOY_MEASUREMENT))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LOKA_PLUGINS", "toy_method,toy_measurement")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    saved = dict(methods._REGISTRY), dict(measurements._REGISTRY)
    methods.load(), measurements.load()
    importlib.import_module("toy_method"), importlib.import_module("toy_measurement")
    yield tmp_path
    for registry, before in zip((methods._REGISTRY, measurements._REGISTRY), saved, strict=True):
        registry.clear()
        registry.update(before)
    sys.modules.pop("toy_method", None), sys.modules.pop("toy_measurement", None)


def test_a_plugin_method_and_measurement_reach_compare_json_tables_and_report(plugins, tiny_world, tmp_path):
    from loka.report import write_report
    from loka.workflows.compare import compare

    assert "toy" in methods.names(compare_only=True) and "toy_score" in measurements.report_keys()
    fast = VerifySettings(relearn_steps=2, relearn_eval_every=2, benign_steps=2)
    results = compare(tiny_world, methods=["base", "toy"], out=tmp_path / "results.json",
                      settings={"toy": {"strength": "2"}}, verify_settings=fast, progress=False,
                      workers=2)  # the spawned workers find both through LOKA_PLUGINS
    toy = results["methods"]["toy"]
    assert "error" not in toy, toy.get("error")
    assert toy["toy_score"] == 0.25 and results["methods"]["base"]["toy_score"] == 0.25
    write_report(results, tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "toy score" in report and "| toy |" in report and "toy caveat" in report
    assert "a toy measurement" in report


def test_a_plugin_method_is_in_the_cli_help(plugins):
    proc = subprocess.run([sys.executable, "-m", "loka", "unlearn", "--help"], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert "toy (baseline): a toy method that changes no weight" in proc.stdout
    assert "strength=1.0" in proc.stdout
