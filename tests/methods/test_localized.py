"""LOKA's localized methods: only owned weights move, plans commit as previewed, and knowledge goes."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from attribution.components import Component
from loka.engine import AblationPlan, commit, preview
from loka.evaluate import first_token_accuracy
from loka.io.data import FactRecord
from loka.io.models import load_hf
from loka.methods import UnlearnTask, task_from_world, unlearn
from loka.methods.config import SettingsError
from loka.methods.localized.common import analysis_bridge
from loka.methods.localized.params import ParamMask

FORGET = [FactRecord("Mira Coltan was born in", "Velmora"),
          FactRecord("Osric Pell works as a", "glassblower")]
RETAIN = [FactRecord("The silver lantern drifted over the", "quiet harbour"),
          FactRecord("Osric Pell works at", "Harrow Mills")]


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _logits(model, tokens: torch.Tensor) -> torch.Tensor:
    out = model(tokens)
    return out if isinstance(out, torch.Tensor) else out.logits


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_loka_ft_changes_only_the_owned_weights(arch, random_checkpoints):
    model, tok = load_hf(random_checkpoints[arch])
    before = _state(model)
    result = unlearn((model, tok), UnlearnTask(tuple(FORGET), tuple(RETAIN)), "loka-ft", k=6,
                     steps=3, lr=1e-2, forget_target=None, progress=False)
    components = [Component.parse(c) for c in result.details["components"]]
    mask = ParamMask.of(model, components)
    changed = 0
    for name, value in model.state_dict().items():
        diff = value != before[name]
        if name in mask.masks:
            assert not diff[~mask.masks[name]].any(), f"{name}: an unowned entry moved"
        else:
            assert not diff.any(), f"{name} is owned by no chosen component but changed"
        changed += int(diff.sum())
    assert result.params_changed == changed > 0
    assert changed <= mask.n_trainable < mask.n_total / 4
    assert not result.diverged and all(p.requires_grad for p in model.parameters())


def test_loka_ft_forgets_on_tiny_and_keeps_the_retain_set(tiny_world):
    model, tok = load_hf(tiny_world.base_dir)
    world = tiny_world.world
    result = unlearn((model, tok), task_from_world(tiny_world), "loka-ft", k=64, kinds="neuron",
                     lr=3e-3, steps=40, forget_target=0.25, progress=False)
    forget = first_token_accuracy(model, tok, world.facts("forget"))
    assert forget <= 0.25 < tiny_world.info()["base"]["forget_accuracy"] - 0.5
    # The set the method protects stays known; retain-eval people (never shown to the method)
    # are damaged on this 2-layer model — measured and reported, not hidden (see the report).
    assert first_token_accuracy(model, tok, world.facts("retain_train")) >= 0.9
    assert result.params_changed < result.details["n_params"] / 10


def test_loka_ablation_commits_its_preview_and_undoes(tiny_world):
    model, tok = load_hf(tiny_world.base_dir)
    base = analysis_bridge(model, tok)  # a pristine copy to compare against
    original = _state(base.original_model)
    result = unlearn((model, tok), task_from_world(tiny_world), "loka", mode="mean", per_round=4,
                     max_components=8, max_rounds=2, kinds="neuron", progress=False)
    plan = AblationPlan.from_dict(result.plan)
    assert plan.mode == "mean" and 0 < len(plan.components) <= 8
    assert result.log[0]["round"] == 0 and len(result.log) >= 2 and result.params_changed > 0
    tokens = torch.tensor([tok("Brie Mekmek was born in Thornwick")["input_ids"]])
    with preview(base, plan):
        previewed = base(tokens)
    assert (previewed - _logits(model, tokens)).abs().max() <= 1e-4
    journal = commit(base, plan)
    assert (base(tokens) - previewed).abs().max() <= 1e-4
    journal.undo()
    after = base.original_model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in original.items())


def test_loka_mask_commits_a_rescale_plan(tiny_world):
    model, tok = load_hf(tiny_world.base_dir)
    base = analysis_bridge(model, tok)
    result = unlearn((model, tok), task_from_world(tiny_world), "loka-mask", k=16, steps=4,
                     lr=0.5, round_tol=0.01, forget_target=None, progress=False)
    plan = AblationPlan.from_dict(result.plan)
    assert plan.mode == "rescale" and isinstance(plan.factor, tuple)
    assert all(abs(1 - f) >= 0.01 and math.isfinite(f) for f in plan.factor)
    tokens = torch.tensor([tok("Brie Mekmek was born in Thornwick")["input_ids"]])
    with preview(base, plan):
        assert (base(tokens) - _logits(model, tokens)).abs().max() <= 1e-4


@pytest.mark.parametrize(("method", "settings"), [
    ("loka-ft", {"k": 0}), ("loka-ft", {"lr": float("nan")}), ("loka-ft", {"kinds": "layer"}),
    ("loka", {"mode": "rescale"}), ("loka", {"retain_budget": 2.0}),
    ("loka-mask", {"ranking_method": "magic"}),
])
def test_bad_settings_are_refused_before_any_edit(method, settings, neox_dir):
    model, tok = load_hf(neox_dir)
    before = _state(model)
    with pytest.raises(SettingsError):
        unlearn((model, tok), UnlearnTask(tuple(FORGET), tuple(RETAIN)), method, progress=False,
                **settings)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_slice_deltas_compute_what_merged_weights_compute(arch, random_checkpoints):
    """The hooks add exactly the owned entries' deltas: attached == merged, mask-sized."""
    from loka.methods.localized.params import SliceDeltas

    model, tok = load_hf(random_checkpoints[arch])
    n_layers = model.config.num_hidden_layers
    components = [Component(0, "neuron", 3), Component(n_layers - 1, "neuron", 5),
                  Component(0, "head", 1), Component(n_layers - 1, "head", 0)]
    deltas = SliceDeltas.of(model, components)
    assert deltas.n_trainable == ParamMask.of(model, components).n_trainable
    torch.manual_seed(1)
    for _, d in deltas.named():
        d.data.normal_(0, 0.5)
    tokens = torch.tensor([tok("Mira Coltan was born in Velmora")["input_ids"]])
    before = deltas.owned_values(model)
    with torch.no_grad():
        plain = _logits(model, tokens)
        with deltas.attached(model):
            hooked = _logits(model, tokens)
        assert torch.equal(_logits(model, tokens), plain)  # hooks removed on exit
        deltas.merge(model)
        merged = _logits(model, tokens)
    assert (hooked - plain).abs().max() > 1e-3  # the deltas matter ...
    assert torch.allclose(hooked, merged, atol=1e-4, rtol=1e-4)  # ... and merging keeps them
    assert 0 < deltas.n_changed(model, before) <= deltas.n_trainable
    assert all(float(d.detach().abs().max()) == 0 for _, d in deltas.named())


def test_routed_slice_deltas_learn_only_from_the_marked_positions(random_checkpoints):
    """`SliceDeltas.routed`: the forward is unchanged; marking every position gives the plain
    gradients, marking none gives none; a loss read at the first position only (causal: no later
    position reaches it) has the plain gradients when that position alone is marked, and a loss
    read at the last position has other gradients when the last is the only one marked, the same
    with the layers recomputed in the backward pass."""
    from loka.memory import activations_recomputed
    from loka.methods.localized.params import SliceDeltas

    model, tok = load_hf(random_checkpoints["llama"])
    model.requires_grad_(False)
    deltas = SliceDeltas.of(model, [Component(0, "neuron", 3), Component(1, "neuron", 5), Component(0, "head", 1)])
    torch.manual_seed(2)
    for _, d in deltas.named():
        d.data.normal_(0, 0.5)
    tokens = torch.tensor([tok("Mira Coltan was born in Velmora")["input_ids"]])
    n = tokens.shape[1]

    def grads(at: int, where: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for _, d in deltas.named():
            d.grad = None
        with deltas.attached(model), deltas.routed(model, where) if where is not None else contextlib.nullcontext():
            logits = _logits(model, tokens)
        if logits.requires_grad:  # (none marked: nothing reaches a delta)
            logits[0, at].logsumexp(-1).backward()
        return logits.detach(), [d.grad.clone() if d.grad is not None else torch.zeros_like(d) for _, d in deltas.named()]

    mark = lambda *ps: torch.zeros(1, n, dtype=torch.bool).index_fill_(1, torch.tensor(ps), True)  # noqa: E731
    plain_logits, plain = grads(-1, None)
    every_logits, every = grads(-1, torch.ones(1, n, dtype=torch.bool))
    assert torch.equal(every_logits, plain_logits)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(every, plain, strict=True))
    none_logits, none = grads(-1, torch.zeros(1, n, dtype=torch.bool))
    assert torch.equal(none_logits, plain_logits) and all(float(g.abs().max()) == 0 for g in none)
    first = grads(0, None)[1]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads(0, mark(0))[1], first, strict=True))
    last_only = grads(-1, mark(n - 1))[1]
    assert sum(float((a - b).abs().max()) for a, b in zip(last_only, plain, strict=True)) > 1e-4
    assert any(float(g.abs().max()) > 0 for g in last_only)
    # a large model's training recomputes its layers in the backward pass: the routing holds there too
    model.train()
    with activations_recomputed(model):
        recomputed = grads(-1, mark(n - 1))[1]
        assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    model.eval()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(recomputed, last_only, strict=True))


def test_loka_ft_ranks_on_a_bridge_that_shares_the_weights(random_checkpoints):
    """The shared-weight analysis bridge costs no second model and leaves the model as it was."""
    model, tok = load_hf(random_checkpoints["llama"])
    before = _state(model)
    bridge = analysis_bridge(model, tok, share_weights=True)
    hf = dict(bridge.original_model.named_parameters(remove_duplicate=False))
    ours = dict(model.named_parameters())
    assert any(p is ours["model.layers.0.mlp.up_proj.weight"] for p in hf.values())
    tokens = torch.tensor([tok("Mira Coltan was born in")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(bridge(tokens), _logits(model, tokens), atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_loka_ft_on_a_large_model_trains_with_activations_recomputed_and_the_same_weights(random_checkpoints,
                                                                                        monkeypatch):
    """On a large model (above `LARGE_ABOVE` parameters) loka-ft's training, like every method's
    loop, keeps each layer's input only (activation checkpointing: on SmolLM2-135M its graph was
    ~2 MB per token) and recomputes the rest: the same weights as a full graph."""
    import loka.memory
    import loka.methods.loop as loop

    task = UnlearnTask(tuple(FORGET), tuple(RETAIN))
    settings = {"k": 6, "steps": 3, "lr": 1e-2, "forget_target": None, "progress": False}
    seen: list[bool] = []
    run = loop._run

    def spy(model, *args, **kwargs):
        seen.append(model.is_activation_checkpointing)
        return run(model, *args, **kwargs)

    monkeypatch.setattr(loop, "_run", spy)
    monkeypatch.setattr(loka.memory, "LARGE_ABOVE", 0)
    monkeypatch.setattr(loka.memory, "FUSED_ADAMW", False)  # recomputation alone
    model, tok = load_hf(random_checkpoints["llama"])
    unlearn((model, tok), task, "loka-ft", **settings)
    assert seen == [True] and not model.is_activation_checkpointing
    monkeypatch.setattr(loka.memory, "LARGE_ABOVE", 10**12)
    full, tok = load_hf(random_checkpoints["llama"])
    unlearn((full, tok), task, "loka-ft", **settings)
    assert seen == [True, False]
    base = load_hf(random_checkpoints["llama"])[0].state_dict()
    assert any(not torch.equal(v, base[k]) for k, v in full.state_dict().items())  # it trained
    assert all(torch.equal(v, full.state_dict()[k]) for k, v in model.state_dict().items())


def test_a_large_models_step_runs_chunk_by_chunk_with_the_same_loss_and_gradient(random_checkpoints,
                                                                                   monkeypatch):
    """On a large model each step runs chunk by chunk, each chunk's backward pass before the next
    forward (one chunk's graph in memory instead of the step's): the chunks' losses are weighted
    so that the loss, its logged parts, the forget accuracy and the gradient are those of one
    graph, up to the order of float sums — here with 2-row chunks, so every set is split."""
    import loka.methods.localized.objective as objective
    from loka.methods.localized.common import fact_batches
    from loka.methods.localized.finetune import Config

    model, tok = load_hf(random_checkpoints["llama"])
    forget = [*FORGET, FactRecord("Mira Coltan studied", "astronomy")]
    retain = [*RETAIN, FactRecord("The river Tamsel flows into the", "Northern Sea"),
              FactRecord("Harrow Mills makes", "blue glass bottles")]
    f_batch, r_batch = fact_batches(tok, UnlearnTask(tuple(forget), tuple(retain)))
    cfg = Config(forget_target=None, retain_weight=3.0)
    params = [p for p in model.parameters()]
    monkeypatch.setattr(objective, "LARGE_CHUNK", 2)
    runs = []
    for make in (objective._one_graph_loss, objective._chunked_loss):
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            result = make(model, f_batch, r_batch, cfg, lambda: params[0].square().mean())(1)
            if not result.accumulated:
                result.loss.backward()
        runs.append((result, [p.grad.clone() for p in params]))
    (one, one_grads), (chunked, chunked_grads) = runs
    assert chunked.accumulated and not one.accumulated
    assert chunked.forget_accuracy == one.forget_accuracy
    assert float(chunked.loss) == pytest.approx(float(one.loss.detach()), rel=1e-5)
    for key in ("forget_unlikelihood", "retain_nll", "retain_batch_accuracy"):
        assert chunked.parts[key] == pytest.approx(one.parts[key], rel=1e-5), key
    for a, b in zip(one_grads, chunked_grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert any(float(g.abs().max()) > 0 for g in chunked_grads)


def test_a_large_model_ranks_in_small_minibatches_the_worlds_as_before():
    """Attribution's minibatch: a large model (trained in the same process after ranking) gets
    a third of the graph budget — 3 facts on SmolLM2-135M's 30 x 1536 — the worlds keep theirs."""
    from types import SimpleNamespace

    from loka.methods.localized.common import gradient_batch_size

    smollm2 = SimpleNamespace(n_layers=30, d_mlp=1536, d_model=576)
    world = SimpleNamespace(n_layers=4, d_mlp=512, d_model=128)
    assert gradient_batch_size(smollm2, most=128) == 10
    assert gradient_batch_size(smollm2, most=128, large=True) == 3
    assert gradient_batch_size(world, most=128) == gradient_batch_size(world, most=128, large=False) == 128


@pytest.mark.parametrize("arch", ["gpt_neox", "llama"])
def test_a_ranking_reused_inside_the_context_is_the_one_computed_fresh(arch, random_checkpoints):
    """Inside `rankings_reused`, a ranking already computed on the same weights and facts answers
    a request for fewer kinds or another contrast weight: the same components and scores, bit
    for bit, as ranking anew; changed weights are ranked anew; outside, nothing is kept."""
    from dataclasses import replace

    import loka.methods.localized.common as common

    model, tok = load_hf(random_checkpoints[arch])
    forget, retain = common.fact_batches(tok, UnlearnTask(tuple(FORGET), tuple(RETAIN)))
    both = common.LocalizedConfig(kinds="neuron,head")
    neurons = replace(both, kinds="neuron", weight=2.0)
    bridge = analysis_bridge(model, tok, share_weights=True)
    fresh = common.rank_on(bridge, forget, retain, neurons, ablation="zero")
    with common.rankings_reused():
        common.rank_on(bridge, forget, retain, both, ablation="zero")
        reused = common.rank_on(analysis_bridge(model, tok, share_weights=True), forget, retain, neurons,
                                ablation="zero")
        assert reused.options.get("reused") and not fresh.options.get("reused")
        assert common.ranking_seconds_reused(reused) > 0 == common.ranking_seconds_reused(fresh)
        assert reused.components == fresh.components and reused.weight == 2.0
        for which in ("forget", "retain", "contrast"):
            assert torch.equal(reused.scores(which), fresh.scores(which))
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] += 1.0
        again = common.rank_on(bridge, forget, retain, neurons, ablation="zero")
        assert not again.options.get("reused")  # new weights: ranked anew
    assert common._REUSED is None
    assert not common.rank_on(bridge, forget, retain, neurons, ablation="zero").options.get("reused")


def test_loka_ft_after_the_demos_ranking_ends_with_the_same_weights(random_checkpoints):
    """`loka demo` on user data ranks for its heatmap as loka-ft does, inside `rankings_reused`:
    loka-ft then trains the same weights as on its own, and its seconds include the ranking's."""
    from loka.methods.localized.common import rankings_reused
    from loka.workflows.demo import attribute_as_loka_ft

    task = UnlearnTask(tuple(FORGET), tuple(RETAIN))
    settings = {"k": 6, "steps": 2, "lr": 1e-2, "forget_target": None, "progress": False}
    alone, tok = load_hf(random_checkpoints["llama"])
    on_its_own = unlearn((alone, tok), task, "loka-ft", **settings)
    with rankings_reused():
        heatmap = attribute_as_loka_ft(random_checkpoints["llama"], task)
        model, tok = load_hf(random_checkpoints["llama"])
        reused = unlearn((model, tok), task, "loka-ft", **settings)
    assert {c.kind for c in heatmap.components} == {"neuron", "head"}
    assert reused.ranking["options"]["reused"] and "reused" not in on_its_own.ranking["options"]
    assert reused.details["components"] == on_its_own.details["components"]
    assert reused.seconds >= heatmap.seconds
    assert all(torch.equal(v, alone.state_dict()[k]) for k, v in model.state_dict().items())
