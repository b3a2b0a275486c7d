"""Token rows for `loka-deep`: texts with the positions a loss reads, character offsets kept.

A `Rows` is ``BOS + text``, right-padded; ``score[i, t]`` says the token at ``t + 1`` is scored
(the answer of a fact, every token of a passage). Offsets map tokens back to characters, so the
subject's tokens can be found in each sentence.

Example:
    >>> rows, offsets, texts = fact_rows(tok, ["Mira Coltan was born in"], ["Velmora"])  # doctest: +SKIP
    >>> rows.score.sum()                                                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from attribution.data import special_ids


@dataclass(frozen=True)
class Rows:
    """``BOS + text`` rows, right-padded; ``score[i, t]``: the token at ``t + 1`` is scored."""

    ids: Tensor
    mask: Tensor
    score: Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, index: Tensor) -> Rows:
        width = int(self.mask[index].sum(-1).max())
        return Rows(self.ids[index, :width], self.mask[index, :width], self.score[index, : width - 1])

    @staticmethod
    def cat(parts: Sequence[Rows]) -> Rows:
        width = max(p.ids.shape[1] for p in parts)
        pad = lambda t, w: torch.nn.functional.pad(t, (0, w - t.shape[1]))  # noqa: E731
        return Rows(torch.cat([pad(p.ids, width) for p in parts]), torch.cat([pad(p.mask, width) for p in parts]),
                    torch.cat([pad(p.score, width - 1) for p in parts]))


def build_rows(tokenizer: Any, texts: Sequence[str], starts: Sequence[int] | None = None) -> tuple[Rows, list]:
    """Rows of ``texts``; tokens whose characters reach past ``starts[i]`` are scored (None: every
    token but BOS). Also each row's character offsets (BOS: ``(-1, -1)``)."""
    bos, pad = special_ids(tokenizer)
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    rows, scores, offsets = [], [], []
    for i, (ids, offs) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
        rows.append(bos + list(ids))
        offsets.append([(-1, -1)] * len(bos) + [tuple(o) for o in offs])
        start = 0 if starts is None else starts[i]
        # ``score[t]`` is the token at ``t + 1``: without BOS the first token is never predicted
        scores.append([e > start for _, e in offs][len(bos) == 0:])
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    score = torch.tensor([s + [False] * (width - 1 - len(s)) for s in scores], dtype=torch.bool)
    return Rows(ids, mask, score), offsets


def fact_rows(tokenizer: Any, prompts: Sequence[str], answers: Sequence[str]) -> tuple[Rows, list, list[str]]:
    """``prompt + " " + answer`` rows scored on the answer's tokens."""
    texts = [f"{p} {a}" for p, a in zip(prompts, answers, strict=True)]
    rows, offsets = build_rows(tokenizer, texts, [len(p) for p in prompts])
    return rows, offsets, texts


def subject_mask(offsets: list, texts: Sequence[str], subjects: Sequence[str], width: int) -> Tensor:
    """``[row pos]``: the tokens that spell each row's subject."""
    out = torch.zeros(len(texts), width, dtype=torch.bool)
    for i, (offs, text, subject) in enumerate(zip(offsets, texts, subjects, strict=True)):
        a = text.find(subject) if subject else -1
        if a < 0:
            continue
        b = a + len(subject)
        for t, (s, e) in enumerate(offs):
            out[i, t] = s >= 0 and s < b and e > a
    return out


def subject_rows(tokenizer: Any, facts: Sequence[Any]) -> tuple[Rows, Tensor]:
    """The facts' rows (`fact_rows`) and the mask of each row's subject tokens (`subject_mask`)."""
    rows, offsets, texts = fact_rows(tokenizer, [f.prompt for f in facts], [f.answer for f in facts])
    return rows, subject_mask(offsets, texts, [f.subject for f in facts], rows.ids.shape[1])


def logits_at(model: Any, rows: Rows, where: Tensor | None = None, embeds: Tensor | None = None) -> Tensor:
    """Logits ``[n_where, vocab]`` predicting the tokens ``where`` marks (default: ``rows.score``);
    the output head runs at those positions only."""
    where = rows.score if where is None else where
    kw = {"inputs_embeds": embeds} if embeds is not None else {"input_ids": rows.ids}
    hidden = model.base_model(attention_mask=rows.mask, **kw).last_hidden_state[:, :-1]
    return model.get_output_embeddings()(hidden[where]).float()


def rows_nll(model: Any, rows: Rows) -> Tensor:
    """Mean NLL of every scored token of ``rows``."""
    return torch.nn.functional.cross_entropy(logits_at(model, rows), rows.ids[:, 1:][rows.score])


@torch.no_grad()
def extraction_rate(model: Any, rows: Rows, prefix: int, n_pre: int = 1) -> float:
    """Greedy continuation from ``prefix`` tokens after the ``n_pre`` prefix tokens (BOS,
    `attribution.data.prefix_ids`): the share of tokens equal to the text (as the verifier's
    extraction cuts it)."""
    cut = prefix + n_pre
    seq = rows.ids[:, :cut]
    for _ in range(rows.ids.shape[1] - cut):
        nxt = model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    gen, ref, m = seq[:, cut:], rows.ids[:, cut:], rows.mask[:, cut:].bool()
    return float(((gen == ref) & m).sum() / m.sum())
