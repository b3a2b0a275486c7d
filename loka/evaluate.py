"""Fast batched answer accuracy of any causal LM (HF model or TransformerBridge) on fact prompts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from attribution._common import input_device
from attribution.data import FactBatch, tokenize_facts


def first_token_hits(first_logits: torch.Tensor, first_answer_ids: torch.Tensor) -> torch.Tensor:
    """``[n]`` bool: is each answer's first token the argmax of the logits that predict it.

    The one definition of first-token accuracy: ``first_logits`` ``[n, vocab]`` are the logits
    at each prompt's last position; ties go to the lowest token id, as in ``torch.argmax``.

    >>> first_token_hits(torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]), torch.tensor([1, 1]))
    tensor([ True, False])
    """
    return first_logits.argmax(-1) == first_answer_ids.to(first_logits.device)


def first_token_margins(first_logits: torch.Tensor, first_answer_ids: torch.Tensor) -> torch.Tensor:
    """``[n]``: each answer's first-token log-prob minus the best other token's (> 0: a hit by
    `first_token_hits`, its size how firmly; a few hundredths of a nat flip under any edit).

    >>> first_token_margins(torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]), torch.tensor([1, 1]))
    tensor([ 1., -3.])
    """
    logp = first_logits.float().log_softmax(-1)
    answer = first_answer_ids.to(logp.device)[:, None]
    return logp.gather(-1, answer)[:, 0] - logp.scatter(-1, answer, float("-inf")).max(-1).values


def logits_of(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits from a HF model (``.logits``) or a bridge (a tensor), same call for both."""
    out = model(input_ids, attention_mask=attention_mask)
    return out if isinstance(out, torch.Tensor) else out.logits


# Architectures whose ``base_model`` output is the final (normed) hidden state and whose output
# embedding alone maps it to the logits: the head can then run at the prompt ends only.
_PLAIN_HEAD = ("gpt_neox", "gpt2", "llama")


def trunk_and_head(model: Any) -> tuple[Any, Any] | None:
    """``(base_model, output head)`` of a plain HF causal LM, else None (a bridge, other heads)."""
    if getattr(getattr(model, "config", None), "model_type", None) not in _PLAIN_HEAD:
        return None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    trunk = getattr(model, "base_model", None)
    if not isinstance(head, torch.nn.Linear) or trunk is None or trunk is model:
        return None
    return trunk, head


def prompt_ends(batch: FactBatch) -> torch.Tensor:
    """``[batch, pos]`` bool, True at each row's last prompt token (whose logits predict the
    first answer token)."""
    where = torch.zeros_like(batch.attention_mask, dtype=torch.bool)
    where[torch.arange(len(batch)), batch.prompt_last] = True
    return where


def logits_at(model: Any, batch: FactBatch, where: torch.Tensor, buckets: int = 4) -> torch.Tensor:
    """``logits[where]`` (``[n, vocab]``, row-major order) of ``batch`` under ``model``.

    Only what those logits need is computed: rows are run in up to ``buckets`` passes of similar
    length (at least 32 rows each), each cut after its own last ``where`` column (causal
    attention: later positions cannot change earlier logits); on a plain HF model
    (`trunk_and_head`) the output head runs at the ``where`` positions only. On the default
    world's fact batches that is ~30% fewer positions than one padded pass, and the head ~20%
    of a pass saved. Exact up to the order of float sums.
    """
    device = input_device(model)
    where = where.to(device)
    widths = torch.where(where.any(1), where.size(1) - where.flip(1).int().argmax(1), 1)  # [batch]
    order = torch.argsort(widths, stable=True)
    groups = order.tensor_split(max(1, min(buckets, len(batch) // 32)))
    parts = [_logits_at(model, batch.input_ids[rows.cpu()], batch.attention_mask[rows.cpu()], where[rows],
                        int(widths[rows].max())) for rows in groups if len(rows)]
    flat = torch.cat(parts)  # grouped by row in ``order``; back to row-major order of ``where``:
    counts = where.sum(1)
    start = torch.empty_like(counts)
    start[order] = torch.cumsum(counts[order], 0) - counts[order]
    rows = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)
    within = torch.arange(len(rows), device=device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return flat[start[rows] + within]


def _logits_at(model: Any, ids: torch.Tensor, mask: torch.Tensor, where: torch.Tensor, width: int) -> torch.Tensor:
    device = where.device
    ids, mask, where = ids[:, :width].to(device), mask[:, :width].to(device), where[:, :width]
    fast = trunk_and_head(model)
    if fast is None:
        return logits_of(model, ids, mask)[where]
    trunk, head = fast
    return head(trunk(input_ids=ids, attention_mask=mask).last_hidden_state[where])


@torch.inference_mode()
def prompt_end_logits(model: Any, batch: FactBatch, batch_size: int = 256) -> torch.Tensor:
    """``[n, vocab]`` float logits at each fact's last prompt token (which predict the answer).

    Causal attention means tokens after the prompt cannot change these logits, so `logits_at`
    cuts each chunk after its longest prompt and runs the output head at the prompt ends only: on
    the default world that made the per-step forget check of the optimising baselines ~2x cheaper
    than full teacher-forced logits.
    """
    out = []
    for chunk in batch.chunks(batch_size):
        out.append(logits_at(model, chunk, prompt_ends(chunk), buckets=1).float())  # FirstTokenEval sorts by length
    return torch.cat(out)


class FirstTokenEval:
    """First-answer-token accuracy on fixed facts, tokenised once and evaluated many times (every
    optimisation step, every round, every point of an attack curve).

    >>> check = FirstTokenEval(tokenizer, world.facts("forget"))   # doctest: +SKIP
    >>> check(model)                                               # doctest: +SKIP
    0.97
    """

    def __init__(self, tokenizer: Any, facts: Sequence[Any], batch_size: int = 256):
        if not facts:
            raise ValueError("no facts to evaluate")
        prompts = [f["prompt"] if isinstance(f, dict) else f.prompt for f in facts]
        answers = [f["answer"] if isinstance(f, dict) else f.answer for f in facts]
        self._sort(tokenize_facts(tokenizer, prompts, answers), batch_size)

    @classmethod
    def from_batch(cls, batch: FactBatch, batch_size: int = 256) -> FirstTokenEval:
        """The same check on facts already tokenised."""
        check = cls.__new__(cls)
        check._sort(batch, batch_size)
        return check

    def _sort(self, batch: FactBatch, batch_size: int) -> None:
        # Sorted by prompt length, each chunk is cut to nearly its own prompts (little padding):
        # 1.5x faster on the default world's 3,200 retain facts.
        self.order = torch.argsort(batch.prompt_last, stable=True)
        self.batch = batch.take(self.order)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.batch)

    def correct(self, model: Any) -> torch.Tensor:
        """``[n]`` bool: is the first answer token the argmax at the end of the prompt."""
        logits = prompt_end_logits(model, self.batch, self.batch_size)
        hit = torch.empty(len(self.batch), dtype=torch.bool)
        hit[self.order] = first_token_hits(logits, self.batch.answer_ids[:, 0]).cpu()
        return hit

    def __call__(self, model: Any) -> float:
        return float(self.correct(model).float().mean())


# What `outputs_finite` runs when there is nothing better: two tokens or more under every prefix
# (`attribution.data.PREFIXES`; a passage needs one token after the first).
FINITE_CHECK_TEXTS = ("The end.", "A short test sentence.")


@torch.inference_mode()
def outputs_finite(model: Any, tokenizer: Any, texts: Sequence[str]) -> bool:
    """Whether the model's logits on ``texts`` are all finite (weights can be finite and still
    overflow: 9e34 x 9e34 is infinity in float32)."""
    from attribution.data import tokenize_passages

    config = getattr(model, "config", None) or getattr(getattr(model, "original_model", None), "config", None)
    batch = tokenize_passages(tokenizer, list(texts), getattr(config, "max_position_embeddings", None))
    device = input_device(model)
    with torch.no_grad():  # a check, not training: no graph (on SmolLM2 it was ~0.3 GB)
        logits = logits_of(model, batch.input_ids.to(device), batch.attention_mask.to(device))
    return bool(torch.isfinite(logits).all())


def first_token_accuracy(model: Any, tokenizer: Any, facts: Sequence[Any], batch_size: int = 256) -> float:
    """Fraction of facts whose first answer token is the argmax at the end of the prompt.

    ``facts`` are objects with ``.prompt`` and ``.answer`` (a world `Fact`) or dicts with those
    keys; nan for none. Evaluating the same facts repeatedly: build one `FirstTokenEval`.
    """
    if not facts:
        return float("nan")
    return FirstTokenEval(tokenizer, facts, batch_size)(model)


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The transformer blocks of a plain HF causal LM (GPT-NeoX, GPT-2, Llama)."""
    trunk = getattr(model, "base_model", model)
    for name in ("layers", "h"):
        layers = getattr(trunk, name, None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")


def final_norm(model: Any) -> torch.nn.Module:
    """The norm before the unembedding (the logit lens applies it to every layer's output)."""
    trunk = getattr(model, "base_model", model)
    for name in ("final_layer_norm", "ln_f", "norm"):
        norm = getattr(trunk, name, None)
        if isinstance(norm, torch.nn.Module):
            return norm
    raise ValueError(f"cannot find the final norm of {type(model).__name__}")


def _block_output(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


@contextmanager
def block_outputs(model: Any, store: list[torch.Tensor]) -> Iterator[None]:
    """Append every block's output (the residual stream after it) to ``store`` on each pass."""
    handles = [layer.register_forward_hook(lambda m, a, out: store.append(_block_output(out)))
               for layer in decoder_layers(model)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def patched_block(model: Any, layer: int, where: torch.Tensor, states: torch.Tensor) -> Iterator[None]:
    """Replace block ``layer``'s output at ``where`` (``[batch pos]`` bool) by ``states[where]``."""

    def hook(module: Any, args: Any, out: Any) -> Any:
        hidden = _block_output(out)
        patched = torch.where(where[..., None].to(hidden.device), states.to(hidden), hidden)
        return (patched, *out[1:]) if isinstance(out, tuple) else patched

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
