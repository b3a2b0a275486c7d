"""One teacher-forced forward pass per item, reduced at once to everything the metrics need.

Full logits (``[items pos vocab]``) are never kept: each chunk is reduced to per-token
log-probs, the answer's argmax checks and the Min-K%++ statistic, and only those are cached. Every
text is scored on all its tokens after the first (BOS); for a fact that is the sentence
``prompt + " " + answer``, and the answer tokens are scored separately for accuracy and the
truth ratio.

Greedy exact match needs no generation: greedy decoding reproduces the answer exactly when every
answer token is the argmax given the prompt and the answer's previous tokens, which is what one
teacher-forced pass shows (the prefix a correct greedy run sees is exactly the teacher's).

Example:
    >>> ff = forward_facts(model, tok, facts)           # doctest: +SKIP
    >>> ff.first_token.mean(), ff.greedy.mean(), loss_score(ff.text)    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from attribution._common import input_device
from attribution.data import FactBatch, PassageBatch, tokenize_facts, tokenize_passages
from loka.evaluate import first_token_hits, logits_of
from loka.io.data import FactRecord
from loka.verify.logprobs import TokenLogprobs, logits_at_rows, mean_logprob, scored_logprobs


@dataclass(frozen=True)
class TextForward:
    """Per-token log-probs of whole texts and their Min-K%++ scores (at ``k``; NaN if skipped)."""

    texts: tuple[str, ...]
    text: TokenLogprobs
    min_k_plus_plus: Float[np.ndarray, " item"]


@dataclass(frozen=True)
class FactForward(TextForward):
    """`TextForward` of the sentences plus the answer's argmax checks and mean log-prob."""

    first_token: Bool[np.ndarray, " item"]
    greedy: Bool[np.ndarray, " item"]
    answer_logprob: Float[np.ndarray, " item"]


def concat_logprobs(parts: Sequence[TokenLogprobs]) -> TokenLogprobs:
    """Stack chunks of different widths (right-padded with unscored zeros)."""
    width = max(p.logprobs.shape[1] for p in parts)
    pad = lambda t, v: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
    return TokenLogprobs(torch.cat([pad(p.logprobs, 0.0) for p in parts]),
                         torch.cat([pad(p.mask, False) for p in parts]))


def _text_mask(batch: FactBatch | PassageBatch) -> Bool[Tensor, "batch pos"]:
    mask = batch.attention_mask.bool().clone()
    mask[:, 0] = False  # the first token (BOS) has nothing to predict it
    return mask


def _reduce_chunk(logits: Tensor, chunk: FactBatch | PassageBatch, k: float | None
                  ) -> dict[str, Any]:
    from loka.verify.measurements.mia import min_k_plus_plus_score  # the MIA's own statistic

    mask = _text_mask(chunk)
    tl = scored_logprobs(logits, chunk.input_ids, mask)
    n = len(chunk)
    out: dict[str, Any] = {
        "text": TokenLogprobs(tl.logprobs.cpu(), tl.mask.cpu()),
        "mkpp": np.full(n, np.nan) if k is None else min_k_plus_plus_score(logits, chunk.input_ids, mask, k),
    }
    if isinstance(chunk, FactBatch):
        answer = chunk.answer_mask[:, 1:]
        argmax_ok = logits[:, :-1].argmax(-1) == chunk.input_ids[:, 1:]
        first = first_token_hits(logits_at_rows(logits, chunk.prompt_last), chunk.answer_ids[:, 0])
        out["first"] = first.cpu().numpy()
        out["greedy"] = (argmax_ok | ~answer).all(-1).cpu().numpy()
        out["answer"] = mean_logprob(TokenLogprobs(tl.logprobs, chunk.answer_mask[:, 1:]))
    return out


@torch.inference_mode()
def _run(model: Any, batch: FactBatch | PassageBatch, batch_size: int, k: float | None
         ) -> dict[str, Any]:
    device = input_device(model)
    parts = []
    for chunk in batch.chunks(batch_size):
        chunk = chunk.to(device)
        logits = logits_of(model, chunk.input_ids, chunk.attention_mask)
        parts.append(_reduce_chunk(logits, chunk, k))
    merged: dict[str, Any] = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if key != "text"}
    merged["text"] = concat_logprobs([p["text"] for p in parts])
    return merged


def _max_len(model: Any) -> int | None:
    return getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)


def forward_facts(model: Any, tokenizer: Any, facts: Sequence[FactRecord], *,
                  batch_size: int = 256, k: float | None = 0.4) -> FactForward:
    """Score ``facts`` teacher-forced: sentence log-probs, Min-K%++, first-token/greedy, answer.

    ``k=None`` skips Min-K%++ (a full-vocabulary pass; NaN scores then) for sets no attack uses.
    """
    # Similar lengths share a chunk (less padding); results go back to the caller's order.
    order = np.argsort([len(f.prompt) + len(f.answer) for f in facts], kind="stable")
    back = torch.from_numpy(np.argsort(order))
    prompts, answers = [facts[i].prompt for i in order], [facts[i].answer for i in order]
    batch = tokenize_facts(tokenizer, prompts, answers, max_len=_max_len(model))
    r = _run(model, batch, batch_size, k)
    r = {key: v[back.numpy()] for key, v in r.items() if key != "text"} | {
        "text": TokenLogprobs(r["text"].logprobs[back], r["text"].mask[back])}
    texts = tuple(f"{f.prompt} {f.answer}" for f in facts)
    return FactForward(texts, r["text"], r["mkpp"], r["first"], r["greedy"], r["answer"])


def forward_texts(model: Any, tokenizer: Any, texts: Sequence[str], *,
                  batch_size: int = 64, k: float = 0.4) -> TextForward:
    """Score whole passages: per-token log-probs and Min-K%++."""
    batch = tokenize_passages(tokenizer, list(texts), max_len=_max_len(model))
    r = _run(model, batch, batch_size, k)
    return TextForward(tuple(texts), r["text"], r["mkpp"])


def answer_logprobs(model: Any, tokenizer: Any, prompts: Sequence[str], answers: Sequence[str], *,
                    batch_size: int = 512) -> Float[np.ndarray, " item"]:
    """Mean answer-token log-prob of each (prompt, answer): ``log P(a | q) / |a|``."""
    batch = tokenize_facts(tokenizer, list(prompts), list(answers), max_len=_max_len(model))
    out = []
    device = input_device(model)
    with torch.inference_mode():
        for chunk in batch.chunks(batch_size):
            chunk = chunk.to(device)
            logits = logits_of(model, chunk.input_ids, chunk.attention_mask)
            out.append(mean_logprob(scored_logprobs(logits, chunk.input_ids, chunk.answer_mask)))
    return np.concatenate(out)
