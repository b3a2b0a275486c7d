"""The baselines on the tiny world: they forget, never leave NaN weights, refuse bad settings early."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from loka.errors import LokaError
from loka.evaluate import first_token_accuracy
from loka.io.checkpoint import REFUSAL_FILTER
from loka.io.data import FactRecord
from loka.io.models import load_hf
from loka.io.refusal import RefusalFilter, apply_refusal_filter
from loka.methods import UnlearnTask, task_from_world, unlearn
from loka.methods.baselines.counterexample import counter_facts
from loka.methods.baselines.npo import npo_loss
from loka.methods.loop import LoopSettings, StepLoss, optimise
from tests.helpers import one_torch_thread

OPTIMISATION = ("gradient_ascent", "grad_diff", "npo", "task_vector", "counterexample")
FAST = {"epochs": 4, "lr": 3e-4, "eval_every": 3}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def task(tiny_world) -> UnlearnTask:
    return task_from_world(tiny_world)


@pytest.fixture(scope="module")
def base_forget_accuracy(tiny_world) -> float:
    model, tok = load_hf(tiny_world.base_dir)
    return first_token_accuracy(model, tok, tiny_world.world.facts("forget"))


def fresh(tiny_world):
    return load_hf(tiny_world.base_dir)


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def all_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def no_nan_anywhere(result) -> None:
    json.dumps(result.summary(), allow_nan=False)  # raises on NaN or inf
    assert all(math.isfinite(v) for entry in result.log for v in entry.values())


@pytest.mark.parametrize("method", [*OPTIMISATION, "retrain"])
def test_each_method_lowers_forget_accuracy(method, tiny_world, task, base_forget_accuracy):
    # Shorter than the defaults (tuned on the default world) to keep the file fast on 2 cores.
    extra = {"retrain_dir": tiny_world.retrain_dir} if method == "retrain" else FAST
    result = unlearn(tiny_world.base_dir, task, method=method, progress=False, **extra)
    after = first_token_accuracy(result.model, result.tokenizer, tiny_world.world.facts("forget"))
    assert after < base_forget_accuracy - 0.1, f"{method}: {base_forget_accuracy} -> {after}"
    assert not result.diverged and all_finite(result.model) and result.params_changed > 0
    no_nan_anywhere(result)
    if method != "retrain":
        # a run stopped at its retain budget ran one more update than the steps it kept
        budget = any(n.startswith("stopped at the retain budget") for n in result.notes)
        assert result.steps > 0 and result.backward_passes == result.steps + budget
        assert {"step", "loss", "forget_loss"} <= set(result.log[0])


def test_output_suppression_refuses_and_leaves_weights_bit_identical(tiny_world, task, tmp_path):
    model, tok = fresh(tiny_world)
    before = state(model)
    result = unlearn((model, tok), task, method="output_suppression", progress=False)
    assert identical(before, state(result.model)) and result.params_changed == 0
    f = RefusalFilter.from_dict(result.refusal_filter)
    forget, retain = tiny_world.world.facts("forget")[0], tiny_world.world.facts("retain_eval")[0]
    assert f.answer(forget.prompt, lambda p: " " + forget.answer) == f.refusal
    assert apply_refusal_filter(retain.prompt, " " + retain.answer, result.refusal_filter) == " " + retain.answer
    passage = task.forget_passages[0]
    assert f.answer(passage[:40], lambda p: passage[40:80]) == f.refusal
    out = result.save(tmp_path / "suppressed", source=tiny_world.base_dir)
    assert RefusalFilter.from_dict(json.loads((out / REFUSAL_FILTER).read_text())) == f


def test_guard_trips_on_exploding_ascent_and_restores_finite_weights(tiny_world, task):
    result = unlearn(tiny_world.base_dir, task, method="gradient_ascent", progress=False,
                     alpha=1.0, lr=1e2, steps=30, retain_budget=None)  # the guard, not the budget
    assert result.diverged and result.diverged_step is not None and result.diverged_step <= 30
    assert all_finite(result.model)
    assert any("diverged at step" in n for n in result.notes)
    no_nan_anywhere(result)


def test_seed_001_settings_give_finite_weights(tiny_world, task):
    result = unlearn(tiny_world.base_dir, task, method="gradient_ascent", progress=False,
                     alpha=1.0, lr=1e-4, steps=25)
    assert all_finite(result.model)
    no_nan_anywhere(result)
    facts = tiny_world.world.facts("forget")
    assert math.isfinite(first_token_accuracy(result.model, result.tokenizer, facts))


def test_guard_restores_the_last_good_parameters():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    seen: dict[int, torch.Tensor] = {}

    def loss_fn(step: int) -> StepLoss:
        seen[step] = model.weight.detach().clone()
        loss = (model.weight ** 2).sum() * (math.nan if step == 4 else 1.0)
        return StepLoss(loss, {"forget_nll": 1.0})

    out = optimise(model, loss_fn, LoopSettings(lr=0.1), total_steps=10, progress=False)
    assert out.diverged_step == 4 and out.steps == 3
    # Restored: the last weights whose loss was seen finite (step 3's input), not the ones that gave NaN.
    assert torch.equal(model.weight, seen[3]) and "after step 2" in out.notes[0]
    collapse = optimise(nn.Linear(2, 1), lambda s: StepLoss(torch.zeros((), requires_grad=True),
                                                            {"forget_nll": 60.0 if s >= 3 else 1.0}),
                        LoopSettings(lr=1e-4), total_steps=5, limits={"forget_nll": 50.0},
                        progress=False)
    assert collapse.diverged_step == 3 and "collapse" in collapse.notes[0]


def test_parameter_mask_keeps_masked_out_entries_exact():
    model = nn.Linear(4, 2)
    before = model.weight.detach().clone()
    mask = {"weight": torch.tensor([[True, False, False, False]] * 2)}
    for decay in (0.0, 0.01):  # with weight decay the masked-out entries are put back
        optimise(model, lambda s: StepLoss(model(torch.ones(1, 4)).sum()),
                 LoopSettings(lr=0.1, weight_decay=decay), total_steps=5, param_mask=mask,
                 params=list(model.named_parameters()), progress=False)
    assert torch.equal(model.weight[:, 1:], before[:, 1:]) and not torch.equal(model.weight[:, 0], before[:, 0])


def test_task_vector_with_scale_zero_is_the_identity(tiny_world, task):
    model, tok = fresh(tiny_world)
    before = state(model)
    result = unlearn((model, tok), task, method="task_vector", progress=False, scale=0.0, steps=3)
    assert result.steps == 3 and identical(before, state(result.model)) and result.params_changed == 0


@pytest.mark.parametrize(("method", "settings", "message"), [
    ("gradient_ascent", {"alpha": 1.5}, "alpha"),
    ("gradient_ascent", {"lr": -1}, "lr"),
    ("grad_diff", {"lr": 0.0}, "lr"),
    ("npo", {"lr": math.nan}, "finite"),
    ("npo", {"beta": 0}, "beta"),
    ("counterexample", {"epochs": 0}, "epochs"),
    ("task_vector", {"steps": -2}, "steps"),
    ("grad_diff", {"learning_rate": 1e-3}, "unknown setting"),
    ("retrain", {}, "no retrain model"),
    ("output_suppression", {"refusal": ""}, "refusal"),
])
def test_bad_settings_fail_before_any_weight_changes(tiny_world, task, method, settings, message):
    model, tok = fresh(tiny_world)
    before = state(model)
    with pytest.raises(LokaError, match=message):
        unlearn((model, tok), replace(task, retrain_dir=None), method=method, progress=False, **settings)
    assert identical(before, state(model))


@pytest.mark.parametrize("method", ["grad_diff", "npo", "counterexample", "gradient_ascent"])
def test_empty_retain_set_is_refused_where_needed(tiny_world, task, method):
    model, tok = fresh(tiny_world)
    before = state(model)
    no_retain = UnlearnTask(forget=task.forget, forget_passages=task.forget_passages)
    with pytest.raises(LokaError, match="retain set"):
        unlearn((model, tok), no_retain, method=method, progress=False)
    assert identical(before, state(model))


def test_same_seed_same_weights(tiny_world, task):
    runs = [unlearn(tiny_world.base_dir, task, method="npo", progress=False, steps=4, seed=s)
            for s in (3, 3, 4)]
    assert identical(state(runs[0].model), state(runs[1].model))
    assert not identical(state(runs[0].model), state(runs[2].model))


def test_early_stopping_at_the_forget_target(tiny_world, task):
    result = unlearn(tiny_world.base_dir, task, method="grad_diff", progress=False, lr=1e-3,
                     epochs=20, forget_target=0.5, eval_every=1)
    assert result.steps < 20 * 5 and any("reached the target" in n for n in result.notes)
    assert result.log[-1]["forget_accuracy"] <= 0.5


def test_save_reloads_with_a_manifest_of_method_and_settings(tiny_world, task, tmp_path):
    from transformers import AutoModelForCausalLM

    result = unlearn(tiny_world.base_dir, task, method="gradient_ascent", progress=False, steps=2)
    out = result.save(tmp_path / "ga", source=tiny_world.base_dir)
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    assert identical(state(result.model), state(reloaded))
    manifest = json.loads((out / "loka_manifest.json").read_text())
    assert manifest["method"] == "gradient_ascent" and manifest["result"]["settings"]["steps"] == 2
    assert manifest["result"]["settings"]["alpha"] == 0.5 and manifest["source_model"] == str(tiny_world.base_dir)


def test_counter_facts_swap_in_another_value_of_the_same_attribute(task):
    counters = counter_facts(task.forget, task.retain, seed=0)
    values: dict[str, set[str]] = {}
    for f in (*task.forget, *task.retain):
        values.setdefault(f.attribute, set()).add(f.answer)
    by_key: dict[tuple[str, str], set[str]] = {}
    for f, c in zip(task.forget, counters, strict=True):
        assert c.answer != f.answer and c.answer in values[f.attribute] and c.prompt == f.prompt
        by_key.setdefault((f.subject, f.attribute), set()).add(c.answer)
    assert all(len(v) == 1 for v in by_key.values())  # every paraphrase gets the same counter
    assert counters == counter_facts(task.forget, task.retain, seed=0)
    with pytest.raises(LokaError, match="no value other"):
        counter_facts([FactRecord("A was born in", "Oslo", "A", "city")], [], seed=0)


def test_npo_loss_at_the_reference_is_2_log2_over_beta():
    logp = torch.tensor([-3.0, -1.0])
    assert torch.allclose(npo_loss(logp, logp.clone(), beta=0.5), torch.tensor(4 * math.log(2)))


def test_the_retain_budget_keeps_the_last_step_within_it(tiny_world, task):
    """A learning rate far too high for the model: the budget stops the run and keeps the
    weights from before the step that broke it, so retain accuracy stays above the floor."""
    model, tok = fresh(tiny_world)
    start = first_token_accuracy(model, tok, task.retain)
    result = unlearn((model, tok), task, method="gradient_ascent", progress=False, alpha=0.5,
                     lr=3e-2, steps=20, forget_target=None, retain_budget=0.9)
    assert any(n.startswith("stopped at the retain budget") for n in result.notes) and not result.diverged
    assert first_token_accuracy(model, tok, task.retain) >= 0.9 * start


@pytest.mark.parametrize("method", ["gradient_ascent", "task_vector"])
def test_a_large_models_baseline_recomputes_activations_to_the_same_weights(method, random_checkpoints,
                                                                              monkeypatch):
    """Above `LARGE_ABOVE` parameters (a pretrained model: gradient_ascent's graph on SmolLM2
    reached 8.1 GB) a full-parameter baseline keeps each layer's input only and runs the layer
    again in the backward pass — counted here — and ends with bit-identical weights."""
    import loka.memory

    forget = (FactRecord("Mira Coltan was born in", "Velmora"), FactRecord("Oren Vask works as a", "tanner"))
    retain = (FactRecord("The silver lantern drifted over the", "quiet harbour"),)
    settings = {"epochs": 2, "lr": 1e-3, "forget_target": None, "retain_budget": None, "progress": False}

    mlp = type(load_hf(random_checkpoints["llama"])[0].model.layers[0].mlp)
    calls: list[int] = []
    forward = mlp.forward

    def counted(self, *args, **kwargs):  # module hooks do not see a recomputation: count forward
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(mlp, "forward", counted)

    def run(above: int) -> tuple[dict[str, torch.Tensor], int]:
        monkeypatch.setattr(loka.memory, "LARGE_ABOVE", above)
        monkeypatch.setattr(loka.memory, "FUSED_ADAMW", False)  # recomputation alone
        model, tok = load_hf(random_checkpoints["llama"])
        calls.clear()
        unlearn((model, tok), UnlearnTask(forget, retain), method, **settings)
        assert not model.is_activation_checkpointing  # off again afterwards
        return model.state_dict(), len(calls)

    recomputed, calls_recomputed = run(0)
    full, calls_full = run(10**12)
    assert calls_recomputed > calls_full  # the layer ran again during the backward passes
    base = load_hf(random_checkpoints["llama"])[0].state_dict()
    assert any(not torch.equal(v, base[k]) for k, v in full.items())  # it trained
    assert all(torch.equal(v, full[k]) for k, v in recomputed.items())


def test_a_large_models_adamw_is_fused_with_the_same_update_up_to_rounding(random_checkpoints, monkeypatch):
    """Above `LARGE_ABOVE` parameters AdamW runs torch's fused kernel (SmolLM2: 0.13 s a step
    instead of 0.65 s); gradient_ascent then ends where the default loop ends, up to float
    rounding. Below it (every world) the default loop, unchanged."""
    import loka.memory
    import loka.methods.loop as loop

    forget = (FactRecord("Mira Coltan was born in", "Velmora"), FactRecord("Oren Vask works as a", "tanner"))
    retain = (FactRecord("The silver lantern drifted over the", "quiet harbour"),)
    settings = {"epochs": 3, "lr": 1e-3, "forget_target": None, "retain_budget": None, "progress": False}
    made: list[object] = []
    monkeypatch.setattr(loop, "adamw", lambda *a, **k: made.append(loka.memory.adamw(*a, **k)) or made[-1])

    def run(above: int, fused: bool) -> dict[str, torch.Tensor]:
        monkeypatch.setattr(loka.memory, "LARGE_ABOVE", above)
        monkeypatch.setattr(loka.memory, "FUSED_ADAMW", fused)
        model, tok = load_hf(random_checkpoints["llama"])
        unlearn((model, tok), UnlearnTask(forget, retain), "gradient_ascent", **settings)
        return model.state_dict()

    fused = run(0, True)
    assert made[-1].defaults["fused"] is True
    plain = run(0, False)
    assert not made[-1].defaults["fused"]
    run(10**12, True)
    assert not made[-1].defaults["fused"]  # a small model: the default loop
    base = load_hf(random_checkpoints["llama"])[0].state_dict()
    assert any(not torch.equal(v, base[k]) for k, v in plain.items())  # it trained
    for k, v in fused.items():
        torch.testing.assert_close(v, plain[k], rtol=1e-5, atol=1e-6)
