"""A large model's fine-tuning attacks recompute activations and measure exactly what they did."""

from __future__ import annotations

import pytest
import torch

import loka.memory
import loka.verify.measurements.relearn as relearn
from loka.io.data import FactRecord
from loka.io.models import load_hf

TRAIN = [FactRecord("Mira Coltan was born in", "Velmora"), FactRecord("Oren Vask works as a", "tanner"),
         FactRecord("Tam Vey lives in", "Ostrel")]


def attack(path, above: int, monkeypatch) -> tuple[dict[str, list], list[float], list[bool], int]:
    """Run `finetune_attack` with `LARGE_ABOVE` = ``above``: its curve, each step's loss, whether
    the copy was in training mode, and how many times an MLP ran forward."""
    model, tok = load_hf(path)
    mlp = type(next(m for n, m in model.named_modules() if n.endswith("mlp")))
    calls: list[int] = []
    forward = mlp.forward

    def counted(self, *args, **kwargs):  # module hooks do not see a recomputation: count forward
        calls.append(1)
        return forward(self, *args, **kwargs)

    losses: list[float] = []
    modes: list[bool] = []
    loss_of = relearn._sentence_loss

    def spy(attacked, batch):
        modes.append(attacked.training)
        loss = loss_of(attacked, batch)
        losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(mlp, "forward", counted)
    monkeypatch.setattr(relearn, "_sentence_loss", spy)
    monkeypatch.setattr(loka.memory, "LARGE_ABOVE", above)
    monkeypatch.setattr(loka.memory, "FUSED_ADAMW", False)  # recomputation alone
    curve = relearn.finetune_attack(model, tok, TRAIN, {"train": TRAIN}, steps=4, lr=3e-3, eval_every=2)
    assert not model.training and not model.is_activation_checkpointing  # the model attacked is untouched
    monkeypatch.undo()
    return curve, losses, modes, len(calls)


def test_a_large_dropout_free_models_attack_recomputes_to_the_same_losses(random_checkpoints, monkeypatch):
    curve, losses, modes, calls = attack(random_checkpoints["llama"], 0, monkeypatch)
    full_curve, full_losses, full_modes, full_calls = attack(random_checkpoints["llama"], 10**12, monkeypatch)
    assert modes == [True] * 4 and full_modes == [False] * 4
    assert calls > full_calls  # the layers ran again in the backward passes
    assert losses == full_losses and curve == full_curve  # bit for bit
    assert losses[-1] < losses[0]  # it trained


def test_a_model_with_dropout_is_attacked_in_eval_mode(random_checkpoints, monkeypatch):
    """With dropout, training mode would compute something else: no recomputation, eval mode."""
    gpt2, _ = load_hf(random_checkpoints["gpt2"])
    assert not loka.memory.dropout_free(gpt2)  # nn.Dropout modules with p = 0.1
    llama, _ = load_hf(random_checkpoints["llama"])
    assert loka.memory.dropout_free(llama)
    llama.config.attention_dropout = 0.1  # Llama's attention dropout is a config rate, not a module
    assert not loka.memory.dropout_free(llama)
    _, _, modes, _ = attack(random_checkpoints["gpt2"], 0, monkeypatch)
    assert modes == [False] * 4


def test_the_attack_changes_only_the_parameters_it_may_train(random_checkpoints, monkeypatch):
    """``trainable`` (bench.deep_relearn's split): the other parameters of the attacked copy stay
    bit-identical, the allowed ones move; a predicate that accepts nothing is a clear error."""
    model, tok = load_hf(random_checkpoints["llama"])
    copies: list[tuple[object, dict[str, torch.Tensor]]] = []
    loss_of = relearn._sentence_loss

    def spy(attacked, batch):
        if not copies:  # the copy before its first step
            copies.append((attacked, {n: p.detach().clone() for n, p in attacked.named_parameters()}))
        return loss_of(attacked, batch)

    monkeypatch.setattr(relearn, "_sentence_loss", spy)
    mlp = lambda name: ".mlp." in name  # noqa: E731
    relearn.finetune_attack(model, tok, TRAIN, {"train": TRAIN}, steps=3, lr=3e-3, eval_every=3, trainable=mlp)
    attacked, before = copies[0]
    moved = {n: not torch.equal(p, before[n]) for n, p in attacked.named_parameters()}
    assert not any(m for n, m in moved.items() if not mlp(n))
    assert all(m for n, m in moved.items() if mlp(n) and n.endswith("proj.weight"))
    monkeypatch.undo()
    with pytest.raises(ValueError, match="no parameter"):
        relearn.finetune_attack(model, tok, TRAIN, {"train": TRAIN}, steps=1, lr=3e-3, eval_every=1,
                                trainable=lambda name: False)
