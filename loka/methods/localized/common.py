"""What LOKA's localized methods share: fact batches, an analysis bridge, losses and accuracy.

Analysis runs on a TransformerBridge over a *deep copy* of the caller's model: booting a bridge
rewires the wrapped HF model in place (a GPT-NeoX bridge even computes attention with private
copies of the fused QKV weight), so the caller's model stays a plain HF model and only ever
receives finished weights (`copy_weights_back`).

Example:
    >>> forget, retain = fact_batches(tokenizer, task)
    >>> bridge = analysis_bridge(hf_model, tokenizer)
    >>> logits = forward(hf_model, forget)
    >>> accuracy(logits, forget), forget_unlikelihood(logits, forget)
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from attribution.data import FactBatch, tokenize_facts
from loka.errors import LokaError
from loka.methods.base import UnlearnTask


class SettingsError(LokaError, ValueError):
    """A method setting out of range (k < 1, a NaN learning rate, an unknown mode)."""


def fact_batches(tokenizer: Any, task: UnlearnTask, max_len: int | None = None, seed: int = 0,
                 ) -> tuple[FactBatch, FactBatch]:
    """The task's forget and retain facts, tokenised; retain shuffled with ``seed`` (minibatches)."""
    if not task.forget:
        raise LokaError("LOKA's localized methods need forget *facts* (prompt + answer); "
                        "this task has passages only")
    if not task.retain:
        raise LokaError("LOKA's localized methods need retain facts to protect; the retain set is empty")
    retain = list(task.retain)
    random.Random(seed).shuffle(retain)
    try:
        forget_batch, retain_batch = (
            tokenize_facts(tokenizer, [f.prompt for f in facts], [f.answer for f in facts],
                           max_len=max_len) for facts in (task.forget, retain))
    except ValueError as exc:
        raise LokaError(str(exc)) from None
    return forget_batch, retain_batch


def analysis_bridge(hf_model: Any, tokenizer: Any) -> Any:
    """A TransformerBridge over a deep copy of ``hf_model`` (which is left untouched)."""
    from transformer_lens.model_bridge import TransformerBridge

    twin = copy.deepcopy(hf_model)
    source = getattr(hf_model, "name_or_path", "") or hf_model.config.model_type
    device = next(hf_model.parameters()).device
    bridge = TransformerBridge.boot_transformers(str(source), hf_model=twin, tokenizer=tokenizer,
                                                 device=str(device))
    bridge.eval()
    return bridge


def copy_weights_back(bridge: Any, hf_model: Any) -> None:
    """Load the bridge's (edited) HF weights into the caller's plain ``hf_model``, bit for bit."""
    from loka.engine import hf_state_dict

    hf_model.load_state_dict(hf_state_dict(bridge), strict=True)


def forward(model: Any, batch: FactBatch) -> Float[Tensor, "batch pos vocab"]:
    """Logits of a HF model or a bridge on a fact batch (moved to the model's device)."""
    batch = batch.to(next(model.parameters()).device)
    out = model(batch.input_ids, attention_mask=batch.attention_mask)
    return out if isinstance(out, Tensor) else out.logits


def _first_logits(logits: Tensor, batch: FactBatch) -> Tensor:
    rows = torch.arange(len(batch), device=logits.device)
    return logits[rows, batch.prompt_last.to(logits.device)].float()


def accuracy(logits: Float[Tensor, "batch pos vocab"], batch: FactBatch) -> float:
    """First-answer-token accuracy read from teacher-forced logits (same as `first_token_accuracy`)."""
    return first_accuracy(_first_logits(logits, batch), batch)


def first_accuracy(first: Float[Tensor, "batch vocab"], batch: FactBatch) -> float:
    """`accuracy` from the logits at the prompt ends only (`loka.evaluate.logits_at` with `prompt_ends`)."""
    pred = first.argmax(-1)
    return float((pred == batch.answer_ids[:, 0].to(pred.device)).float().mean())


def forget_unlikelihood(logits: Float[Tensor, "batch pos vocab"], batch: FactBatch) -> Tensor:
    """Mean of ``-log(1 - p(first answer token))``: the unlikelihood loss, minimised as p -> 0.

    Its gradient in ``log p`` is ``p / (1 - p)``: strong while the model still knows the answer
    and vanishing once p is small, so unlike gradient ascent on ``log p`` it cannot run away to
    ``-inf`` (seed 001's divergence). Only the first answer token is pushed down: it names the
    value; later sub-word tokens ("Thorn" -> "wick") are spelling every retain fact shares.
    """
    return first_unlikelihood(_first_logits(logits, batch), batch)


def first_unlikelihood(first: Float[Tensor, "batch vocab"], batch: FactBatch) -> Tensor:
    """`forget_unlikelihood` from the logits at the prompt ends only."""
    logp = first.float().log_softmax(-1)
    picked = logp.gather(-1, batch.answer_ids[:, :1].to(logp.device)).squeeze(-1)
    return -torch.log1p(-picked.exp().clamp(max=1 - 1e-6)).mean()


def answers_nll(selected: Float[Tensor, "n vocab"], batch: FactBatch) -> Tensor:
    """`retain_nll` from ``loka.evaluate.logits_at(model, batch, read_positions(batch))``."""
    targets = batch.input_ids[:, 1:][batch.answer_mask[:, 1:]].to(selected.device)
    return torch.nn.functional.cross_entropy(selected.float(), targets)


def retain_nll(logits: Float[Tensor, "batch pos vocab"], batch: FactBatch) -> Tensor:
    """Mean negative log-likelihood of every retain answer token (teacher forced)."""
    logp = logits[:, :-1].float().log_softmax(-1)
    target = batch.input_ids[:, 1:].to(logp.device)
    mask = batch.answer_mask[:, 1:].to(logp.device)
    picked = logp.gather(-1, target[..., None]).squeeze(-1)
    return -(picked * mask).sum() / mask.sum()


def check_number(name: str, value: Any, low: float | int, high: float | int = math.inf,
                 integer: bool = False) -> None:
    """Raise `SettingsError` unless ``low <= value <= high`` (and an int when ``integer``)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a finite number"
        bound = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise SettingsError(f"setting {name} must be {kind} {bound}, got {value!r}")


def parse_kinds(kinds: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"neuron,head"`` or ``("neuron",)`` -> a validated tuple of component kinds."""
    items = tuple(k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds))
    bad = [k for k in items if k not in ("neuron", "head")]
    if not items or bad:
        raise SettingsError(f"kinds must be a non-empty subset of neuron,head; got {kinds!r}")
    return items
