"""The default world's headline claims, re-checked end to end (`make test-slow`: builds or loads
the default world, minutes). The numbers asserted are the ones README and BENCHMARKS report."""

from __future__ import annotations

import pytest

from loka.evaluate import first_token_accuracy
from loka.io.data import FactRecord

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_world():
    from loka.world.build import load_world

    return load_world("default", progress=False)


def _records(facts):
    return [FactRecord(f.prompt, f.answer, f.subject, f.attribute) for f in facts]


def test_loka_ft_meets_the_issue_targets(default_world):
    """Forget within 0.05 of the retrain model's, retain-eval >= 0.95 of the base model's."""
    from loka.methods import task_from_world, unlearn

    world, info = default_world.world, default_world.info()
    result = unlearn(default_world.base_dir, task_from_world(default_world), "loka-ft", progress=False)
    forget = first_token_accuracy(result.model, result.tokenizer, world.facts("forget"))
    retain = first_token_accuracy(result.model, result.tokenizer, world.facts("retain_eval"))
    assert forget <= info["retrain"]["forget_accuracy"] + 0.05
    assert retain >= 0.95 * info["base"]["retain_accuracy"]
    assert result.params_changed < 0.25 * sum(p.numel() for p in result.model.parameters())


def test_model_update_generalises_and_the_old_value_does_not_come_back(default_world):
    from loka.io.models import load_hf
    from loka.workflows.update import edits_from_world, update_facts
    from loka.workflows.update_check import answer_rates, probe_old_value, relearn_other_facts

    world = default_world.world
    edits = edits_from_world(world, n=2)
    base, tok = load_hf(default_world.base_dir)
    model, _ = load_hf(default_world.base_dir)
    update_facts(model, tok, edits, _records(world.facts("retain_train")))
    # Unlike tiny, the default model takes the new employer on the held-out question template too.
    assert answer_rates(model, tok, edits) == {"train": {"old": 0.0, "new": 1.0},
                                               "heldout": {"old": 0.0, "new": 1.0}}
    before = first_token_accuracy(base, tok, world.facts("retain_eval"))
    assert first_token_accuracy(model, tok, world.facts("retain_eval")) >= before - 0.05
    subjects = {e.subject for e in edits}
    attack = [f for kind in ("train", "qa", "novel") for f in _records(world.facts("retain_train", kind))
              if f.subject in subjects and f.attribute != "employer"]
    assert relearn_other_facts(base, tok, edits, attack)["best_old"] == 1.0
    on_update = relearn_other_facts(model, tok, edits, attack)
    assert on_update["attack_fact_accuracy"] >= 0.9 and on_update["best_old"] <= 1 / 12
    # Probes: the old value is gone from the last layer's residual stream but still partly
    # readable mid-network (layer 2: 0.92 -> 0.50, chance 0.02): measured, not hidden.
    train = [f for s in ("retain_train", "retain_eval") for f in world.facts(s) if f.attribute == "employer"]
    chance = [f for f in world.facts("holdout") if f.attribute == "employer"]
    was = probe_old_value(base, tok, edits, train, chance)
    now = probe_old_value(model, tok, edits, train, chance)
    assert was[-1]["old_rate"] >= 0.9 and now[-1]["old_rate"] <= now[-1]["chance"] + 0.1
    assert max(layer["old_rate"] for layer in now) < max(layer["old_rate"] for layer in was)
