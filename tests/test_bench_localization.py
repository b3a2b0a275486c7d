"""`bench.localization`'s committed tables are its JSON's, and its `METHOD[KEY=VALUE;...]` rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.localization import UNLEARN, markdown, variant

FIGURES = Path(__file__).parents[1] / "figures" / "localization"


def test_the_committed_markdown_is_what_the_committed_json_says():
    out = json.loads((FIGURES / "localization.json").read_text())
    assert markdown(out) == (FIGURES / "localization.md").read_text()


def test_every_unlearn_row_of_the_committed_run_is_in_its_markdown():
    out = json.loads((FIGURES / "localization.json").read_text())
    text = markdown(out)
    for name in ["base", "retrain", *UNLEARN.split(","), "planted-ablation"]:
        assert f"| {name} |" in text, name


def test_a_method_with_settings_is_parsed_for_its_own_row():
    assert variant("loka") == ("loka", {})
    assert variant("loka[kinds=neuron]") == ("loka", {"kinds": "neuron"})
    assert variant("loka[kinds=neuron;mode=mean]") == ("loka", {"kinds": "neuron", "mode": "mean"})
    with pytest.raises(SystemExit, match="METHOD"):
        variant("loka[kinds=neuron")
