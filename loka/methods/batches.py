"""Training data for the optimisation methods: facts and passages as one padded `TokenSet`.

Tokenisation is `attribution.data`'s (``tokenize_facts`` / ``tokenize_passages``); a `TokenSet`
only merges them with one ``loss_mask``: the answer tokens of a fact (``BOS prompt answer``,
the prompt is context only) and every token but the first of a passage.

Losses are per item: `item_nll` is an item's mean NLL over its loss tokens (nats per token),
`item_logprob` the sum of its loss tokens' log-probs (``log p(answer | prompt)`` for a fact).

>>> data = TokenSet.build(tokenizer, task.forget, task.forget_passages)        # doctest: +SKIP
>>> item_nll(model, data.select(torch.arange(8))).mean()                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from attribution._common import input_device
from attribution.data import tokenize_facts, tokenize_passages
from attribution.metrics import token_logprobs
from loka.evaluate import logits_of
from loka.io.data import FactRecord


@dataclass(frozen=True, eq=False)
class TokenSet:
    """Right-padded token rows with the mask of the positions the loss reads."""

    input_ids: Int[Tensor, "item pos"]
    attention_mask: Int[Tensor, "item pos"]
    loss_mask: Bool[Tensor, "item pos"]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @classmethod
    def build(cls, tokenizer: Any, facts: Sequence[FactRecord] = (), passages: Sequence[str] = (),
              max_len: int | None = None) -> TokenSet | None:
        """Facts (loss on the answer) then passages (loss on every token); None when both are empty."""
        parts: list[tuple[Tensor, Tensor, Tensor]] = []
        if facts:
            fb = tokenize_facts(tokenizer, [f.prompt for f in facts], [f.answer for f in facts], max_len)
            parts.append((fb.input_ids, fb.attention_mask, fb.answer_mask))
        if passages:
            pb = tokenize_passages(tokenizer, list(passages), max_len)
            parts.append((pb.input_ids, pb.attention_mask, pb.score_mask))
        if not parts:
            return None
        width = max(p[0].shape[1] for p in parts)
        pad = lambda t, v: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
        # Pad ids are never attended to nor scored, so their value does not matter.
        return cls(torch.cat([pad(p[0], 0) for p in parts]), torch.cat([pad(p[1], 0) for p in parts]),
                   torch.cat([pad(p[2], False) for p in parts]))

    def select(self, index: Int[Tensor, " n"]) -> TokenSet:
        """Rows ``index``, trimmed to their longest row."""
        mask = self.attention_mask[index]
        width = int(mask.sum(-1).max())
        return TokenSet(self.input_ids[index, :width], mask[:, :width], self.loss_mask[index, :width])

    def to(self, device: torch.device | str) -> TokenSet:
        return TokenSet(self.input_ids.to(device), self.attention_mask.to(device), self.loss_mask.to(device))


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Int[Tensor, " b"]]:
    """Endless shuffled minibatch indices over ``n`` items, reshuffled every pass."""
    while True:
        order = torch.randperm(n, generator=generator)
        yield from order.split(batch_size)


def _scored(model: Any, batch: TokenSet) -> tuple[Float[Tensor, "item pos"], Bool[Tensor, "item pos"]]:
    device = input_device(model)
    batch = batch.to(device)
    logits = logits_of(model, batch.input_ids, batch.attention_mask)
    return token_logprobs(logits, batch.input_ids), batch.loss_mask


def item_logprob(model: Any, batch: TokenSet) -> Float[Tensor, " item"]:
    """Sum of each item's loss-token log-probs (``log p(answer | prompt)`` for a fact)."""
    logp, mask = _scored(model, batch)
    return (logp * mask).sum(-1)


def item_nll(model: Any, batch: TokenSet) -> Float[Tensor, " item"]:
    """Each item's mean NLL over its loss tokens, in nats per token."""
    logp, mask = _scored(model, batch)
    return -(logp * mask).sum(-1) / mask.sum(-1).clamp(min=1)
