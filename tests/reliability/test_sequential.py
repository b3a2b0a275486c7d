"""Sequential erasure requests: batches, per-step measurements, decay verdicts, the CLI's files."""

from __future__ import annotations

import json

import pytest

from loka.errors import LokaError
from loka.workflows.sequential import MethodRun, StepRecord, request_batches
from tests.report_helpers import assert_valid_png


def test_request_batches_cover_every_subject_once_in_order():
    people = [f"p{i}" for i in range(20)]
    assert request_batches(people, 5) == [people[i:i + 4] for i in range(0, 20, 4)]
    uneven = request_batches(people[:7], 3)
    assert [len(b) for b in uneven] == [3, 2, 2] and sum(uneven, []) == people[:7]
    for bad in (0, 21):
        with pytest.raises(LokaError, match="--batches"):
            request_batches(people, bad)


def test_decay_flags_a_batch_that_comes_back_and_a_retain_collapse():
    run = MethodRun("m", {}, [StepRecord(0, [0.9, 0.9, 0.9], 0.9),
                              StepRecord(1, [0.1, 0.9, 0.9], 0.9),
                              StepRecord(2, [0.3, 0.0, 0.9], 0.88),
                              StepRecord(3, [0.4, 0.05, 0.1], 0.6)])
    d = run.decay()
    assert d["rebound"] == [0.3, 0.05, 0.0] and d["max_rebound"] == 0.3
    assert d["decays"] and "came back" in d["reason"] and "retain-eval fell 0.30" in d["reason"]
    stable = MethodRun("m", {}, [StepRecord(0, [0.9], 0.9), StepRecord(1, [0.0], 0.88)])
    assert stable.decay() == {"rebound": [0.0], "max_rebound": 0.0, "retain_drop": 0.02,
                              "decays": False, "reason": "stable"}


def test_cli_runs_requests_in_sequence_and_writes_json_figure_and_table(tiny_world, tmp_path, capsys):
    from loka.cli import main

    out = tmp_path / "seq"
    code = main(["sequential", "--preset", "tiny", "--methods", "gradient_ascent", "--batches", "2",
                 "--set", "gradient_ascent.epochs=3", "--set", "gradient_ascent.lr=3e-4",
                 "--out", str(out)])
    assert code == 0
    result = json.loads((out / "sequential.json").read_text())
    forget_people = [p.name for p in tiny_world.world.people_in("forget")]
    assert sum(result["batches"], []) == forget_people and len(result["batches"]) == 2
    run = result["methods"]["gradient_ascent"]
    assert run["settings"] == {"epochs": 3, "lr": 3e-4}
    steps = run["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2]
    assert all(len(s["forget_accuracy"]) == 2 for s in steps)
    base = tiny_world.info()["base"]
    assert steps[0]["retain_eval_accuracy"] == pytest.approx(base["retain_accuracy"], abs=1e-3)
    # Each request lowers its own batch (the method saw only that batch as its forget set).
    assert steps[1]["forget_accuracy"][0] < steps[0]["forget_accuracy"][0] - 0.3
    assert steps[2]["forget_accuracy"][1] < steps[0]["forget_accuracy"][1] - 0.3
    assert set(run["decay"]) == {"rebound", "max_rebound", "retain_drop", "decays", "reason"}
    assert_valid_png(out / "sequential.png")
    table = (out / "sequential.md").read_text()
    assert "| gradient_ascent | 1 |" in table and "retain-eval" in capsys.readouterr().out


def test_cli_settings_must_name_a_listed_method(capsys):
    from loka.cli import main

    assert main(["sequential", "--preset", "tiny", "--methods", "gradient_ascent",
                 "--set", "npo.lr=1"]) == 2
    assert "not one of the methods run" in capsys.readouterr().err
