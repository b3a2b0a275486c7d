"""The weight snapshot a large model's optimisation keeps on disk instead of in memory."""

from __future__ import annotations

import os

import torch
from torch import nn

import loka.memory
from loka.methods.guard import ParamSnapshot
from loka.methods.loop import LoopSettings, StepLoss, optimise


def params() -> list[tuple[str, nn.Parameter]]:
    gen = torch.Generator().manual_seed(0)
    return [("w", nn.Parameter(torch.randn(7, 5, generator=gen))),
            ("half", nn.Parameter(torch.randn(3, 4, generator=gen).to(torch.bfloat16))),
            ("f16", nn.Parameter(torch.randn(6, generator=gen).to(torch.float16))),
            ("scalar", nn.Parameter(torch.tensor(0.25)))]


def tiny_net() -> tuple[nn.Module, torch.Tensor]:
    """A seeded two-layer net and 16 inputs for it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    return model, torch.randn(16, 4)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s weights."""
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_an_on_disk_snapshot_holds_the_exact_values_in_a_nameless_file():
    named = params()
    snap = ParamSnapshot(named, on_disk=True)
    assert snap.values == {} and snap._file is not None
    assert os.fstat(snap._file.fileno()).st_nlink == 0  # nothing left behind, even after kill -9
    for n, p in named:
        v = snap.value(n)
        assert v.dtype == p.dtype and v.shape == p.shape and torch.equal(v, p.detach())


def test_on_disk_and_in_memory_snapshots_count_restore_and_refresh_alike():
    named = params()
    disk, memory = ParamSnapshot(named, on_disk=True), ParamSnapshot(named)
    originals = {n: p.detach().clone() for n, p in named}
    with torch.no_grad():
        named[0][1][2, 3] += 1.0
        named[0][1][0, 0] = float("nan")  # NaN counts as changed
        named[1][1][1] *= 2
        named[3][1].fill_(-1.0)
    assert disk.changed() == memory.changed() == 2 + 4 + 1
    disk.restore()
    assert all(torch.equal(p.detach(), originals[n]) for n, p in named)
    assert disk.changed() == 0
    with torch.no_grad():
        named[2][1].add_(1.0)
    disk.refresh()
    assert disk.changed() == 0 and torch.equal(disk.value("f16"), named[2][1].detach())
    disk.close()
    assert disk._file is None


def test_the_loop_keeps_a_large_models_starting_weights_on_disk_with_the_same_result(monkeypatch):
    """Above `LARGE_ABOVE` parameters the loop's starting snapshot is written to disk (spied
    here); the run ends with the same weights and the same count of changed entries."""
    made: list[bool] = []
    real_init = ParamSnapshot.__init__

    def spy(self, named, on_disk=False):
        made.append(on_disk)
        real_init(self, named, on_disk)

    monkeypatch.setattr(ParamSnapshot, "__init__", spy)

    def run(above: int) -> tuple[dict[str, torch.Tensor], int]:
        monkeypatch.setattr(loka.memory, "LARGE_ABOVE", above)
        monkeypatch.setattr(loka.memory, "FUSED_ADAMW", False)  # the snapshot's place alone
        model, x = tiny_net()
        with torch.no_grad():
            model[0].weight[:, 0] = 0.0  # a column the first input never moves (input 0 is 0)
        x[:, 0] = 0.0

        def loss_fn(step: int) -> StepLoss:
            return StepLoss(model(x).pow(2).mean())

        out = optimise(model, loss_fn, LoopSettings(lr=1e-2), total_steps=5, progress=False)
        return state(model), out.params_changed

    made.clear()
    large, changed_large = run(0)
    assert made == [True, True]  # the loop's initial snapshot and the guard's went to disk
    made.clear()
    small, changed_small = run(10**12)
    assert made == [False, False]
    assert changed_large == changed_small == sum(v.numel() for v in small.values()) - 8
    assert all(torch.equal(v, small[k]) for k, v in large.items())


def test_a_snapshot_that_cannot_be_written_stays_in_memory(monkeypatch):
    import tempfile

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    named = params()
    snap = ParamSnapshot(named, on_disk=True)
    assert snap._file is None and set(snap.values) == {n for n, _ in named}
    assert snap.changed() == 0


def test_non_finite_weights_are_counted_chunk_by_chunk_exactly():
    """The NaN/inf count (the saved model's check and the divergence guard's) reads a parameter a few million entries at a time (no float-sized
    temporaries of a whole embedding): the exact count, across chunk boundaries."""
    x = torch.randn(1000, 10)
    x[0, 0], x[399, 9], x[400, 0], x[999, 9] = float("nan"), float("inf"), -float("inf"), float("nan")
    assert loka.memory.non_finite_entries(x, chunk=4000) == loka.memory.non_finite_entries(x, chunk=7) == 4
    assert loka.memory.non_finite_entries(torch.zeros(0)) == 0


def test_the_outputs_check_builds_no_graph(random_checkpoints):
    """`outputs_finite` is a check: its forward pass keeps no graph even when the weights
    require gradients (on SmolLM2 the graph was ~0.3 GB of the edited model's peak)."""
    from loka.evaluate import outputs_finite
    from loka.io.models import load_hf

    model, tok = load_hf(random_checkpoints["llama"])
    model.requires_grad_(True)
    graphs: list[bool] = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: graphs.append(o.requires_grad))
    with torch.enable_grad():
        assert outputs_finite(model, tok, ["The", "A short test sentence."])
    assert graphs == [False]


def test_a_large_models_guard_restores_its_last_good_weights_from_disk(monkeypatch):
    """The guard's snapshot of a large model lives in a file: a collapse seen before step 4's update
    restores the last snapshot (taken before step 3: the weights after step 2), the same as from a
    snapshot in memory; a disk that fills up between refreshes leaves the copy in memory, not a
    crash."""

    def run(above: int, disk_fills_at: int | None = None) -> tuple[dict[str, torch.Tensor], object]:
        monkeypatch.setattr(loka.memory, "LARGE_ABOVE", above)
        model, x = tiny_net()
        after: dict[int, dict[str, torch.Tensor]] = {}

        def loss_fn(step: int) -> StepLoss:
            after[step - 1] = state(model)
            if disk_fills_at is not None and step == disk_fills_at:
                monkeypatch.setattr(ParamSnapshot, "_write", lambda self: (_ for _ in ()).throw(OSError(28, "full")))
            loss = model(x).pow(2).mean()
            return StepLoss(loss, {"forget_nll": 100.0 if step == 4 else float(loss.detach())})

        out = optimise(model, loss_fn, LoopSettings(lr=1e-2), total_steps=6, progress=False,
                       limits={"forget_nll": 50.0})
        assert out.diverged and out.diverged_step == 4
        assert all(torch.equal(v, after[2][k]) for k, v in model.state_dict().items())
        assert not all(torch.equal(v, after[3][k]) for k, v in model.state_dict().items())
        return model.state_dict(), out

    on_disk, _ = run(0)
    in_memory, _ = run(10**12)
    assert all(torch.equal(v, in_memory[k]) for k, v in on_disk.items())
    run(0, disk_fills_at=3)  # the refresh before step 3 fails: kept in memory, restored all the same


def test_a_retain_budget_without_a_forget_target_runs_every_step_and_logs_forget_accuracy():
    """``retain_floor`` with ``target=None`` (`loka-deep`'s ``lookup_name_steps``): the budget is
    checked, nothing stops on forget accuracy, which is still measured and logged each step."""
    model, x = tiny_net()
    out = optimise(model, lambda step: StepLoss(model(x).pow(2).mean()),
                   LoopSettings(lr=1e-2, target=None, retain_floor=0.5), total_steps=4, progress=False,
                   forget_accuracy=lambda: 0.0, retain_accuracy=lambda: 1.0)
    assert out.steps == 4 and out.stopped != "target"
    assert [e["forget_accuracy"] for e in out.log if "forget_accuracy" in e] == [0.0] * 4


def test_a_forget_ceiling_undoes_the_step_that_crossed_it_and_stops():
    """``forget_ceiling`` (`loka-deep`'s ``lookup_teacher_hold``): the step after which forget
    accuracy is above it is undone — the weights are those after the step before — and the run
    stops there, counting only the steps it kept."""
    model, x = tiny_net()
    after: dict[int, dict[str, torch.Tensor]] = {}

    def loss_fn(step: int) -> StepLoss:
        after[step - 1] = state(model)
        return StepLoss(model(x).pow(2).mean())

    forget = iter([0.0, 0.0, 0.25, 0.0])  # measured after steps 1, 2, 3, ...: step 3 brings a fact back
    out = optimise(model, loss_fn, LoopSettings(lr=1e-2, target=None, retain_floor=0.5, forget_ceiling=0.0),
                   total_steps=6, progress=False, forget_accuracy=lambda: next(forget), retain_accuracy=lambda: 1.0)
    assert out.stopped == "forget ceiling" and out.steps == 2 and not out.diverged
    assert all(torch.equal(v, after[2][k]) for k, v in model.state_dict().items())
    assert any(n.startswith("stopped at the forget ceiling: step 3") for n in out.notes)
