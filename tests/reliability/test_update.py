"""Model update on tiny: the new value replaces the old one, only in the attributed weights, on
training and held-out templates; the old value does not come back under a relearning attack on
the person's other facts."""

from __future__ import annotations

import pytest

from loka.errors import LokaError
from loka.evaluate import first_token_accuracy
from loka.io.data import FactRecord
from loka.io.models import load_hf
from loka.workflows.update import FactEdit, edits_from_world, update_facts
from loka.workflows.update_check import answer_rates, probe_old_value, relearn_other_facts


def _records(facts):
    return [FactRecord(f.prompt, f.answer, f.subject, f.attribute) for f in facts]


@pytest.fixture(scope="module")
def updated(tiny_world):
    world = tiny_world.world
    edits = edits_from_world(world, n=2)
    base, tok = load_hf(tiny_world.base_dir)
    model, _ = load_hf(tiny_world.base_dir)
    result = update_facts(model, tok, edits, _records(world.facts("retain_train")))
    subjects = {e.subject for e in edits}
    attack = [f for kind in ("train", "qa", "novel") for f in _records(world.facts("retain_train", kind))
              if f.subject in subjects and f.attribute != "employer"]
    return world, edits, base, model, tok, result, attack


def test_edits_are_well_formed(updated):
    _, edits, *_ = updated
    for e in edits:
        assert len({e.old, e.new, e.control}) == 3 and e.prompts and e.heldout_prompts
        assert all(f.subject == e.subject and f.attribute != e.attribute for f in e.others)
    with pytest.raises(LokaError, match="equals the old"):
        FactEdit("x", "employer", "A", "A", ("p",))


def test_new_value_replaces_the_old_on_training_and_heldout_templates(updated):
    world, edits, base, model, tok, result, _ = updated
    assert answer_rates(base, tok, edits) == {"train": {"old": 1.0, "new": 0.0},
                                              "heldout": {"old": 1.0, "new": 0.0}}
    rates = answer_rates(model, tok, edits)
    assert rates["train"] == {"old": 0.0, "new": 1.0}
    # Held-out template (never edited on): on tiny the new value carries over for at least one
    # of the two people; the other may keep the old one there — the edit is partly template-bound.
    assert rates["heldout"]["new"] >= 0.5 and rates["heldout"]["old"] <= 0.5
    assert not result.diverged and 0 < result.params_changed < 0.25 * sum(p.numel() for p in model.parameters())
    # Damage is measured, not hidden: the people the update never saw lose a little.
    before = first_token_accuracy(base, tok, world.facts("retain_eval"))
    assert first_token_accuracy(model, tok, world.facts("retain_eval")) >= before - 0.15


def test_old_value_does_not_come_back_when_relearning_the_persons_other_facts(updated):
    _, edits, base, model, tok, _, attack = updated
    on_base = relearn_other_facts(base, tok, edits, attack)
    on_update = relearn_other_facts(model, tok, edits, attack)
    assert on_base["best_old"] == 1.0  # the attack starts from a model that knows the old value
    assert on_update["attack_fact_accuracy"] >= 0.9  # the attack did learn its own facts
    assert on_update["best_old"] <= 0.25, on_update  # at most 3 of 12 prompts, at any step
    assert on_update["old_accuracy"][-1] <= on_update["best_control"] + 1 / 12


def test_probe_reads_no_more_of_the_old_value_than_before(updated):
    """On tiny the cross-person probe is weak even on the base model (see update_check); this
    checks the machinery and that the edit never makes the old value *more* readable."""
    world, edits, base, model, tok, _, _ = updated
    train = [f for s in ("retain_train", "retain_eval") for f in world.facts(s) if f.attribute == "employer"]
    chance = [f for f in world.facts("holdout") if f.attribute == "employer"]
    before = probe_old_value(base, tok, edits, train, chance)
    after = probe_old_value(model, tok, edits, train, chance)
    assert len(after) == 2 and all(0 <= layer["chance"] <= 0.2 for layer in after)
    for b, a in zip(before, after, strict=True):
        assert a["old_rate"] <= max(b["old_rate"], a["chance"]) + 1 / 12


_UPDATE_IN_A_NEW_PROCESS = """
import hashlib, sys, torch
torch.set_num_threads(1)
from loka.io.data import FactRecord
from loka.io.models import load_hf
from loka.workflows.update import edits_from_world, update_facts
from loka.world.build import load_world
art = load_world("tiny", progress=False)
model, tok = load_hf(art.base_dir)
update_facts(model, tok, edits_from_world(art.world, n=2),
             [FactRecord(f.prompt, f.answer, f.subject, f.attribute) for f in art.world.facts("retain_train")])
h = hashlib.sha256()
for name, p in sorted(model.state_dict().items()):
    h.update(name.encode()); h.update(p.detach().contiguous().numpy().tobytes())
print(h.hexdigest())
"""


def test_an_update_gives_bit_identical_weights_in_another_process(updated):
    import hashlib
    import os
    import subprocess
    import sys

    model = updated[3]
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().contiguous().numpy().tobytes())
    proc = subprocess.run([sys.executable, "-c", _UPDATE_IN_A_NEW_PROCESS], capture_output=True,
                          text=True, timeout=600, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == h.hexdigest()
