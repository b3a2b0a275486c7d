"""Tokenisation shared by the whole project: fact prompts with answers, and passages.

A `FactBatch` holds ``BOS + prompt + " " + answer`` right-padded, with a mask of the answer
positions, so ``log p(answer | prompt)`` is read teacher-forced from one forward pass. A
`PassageBatch` holds ``BOS + text``, scored by mean token log-likelihood. Which token goes first is
the tokenizer's *prefix* (`prefix_ids`): its BOS (the default, as LOKA's worlds are trained), its
EOS (a document separator, as GPT-2's and Pythia's corpora are packed) or nothing (the text as
``tokenizer(text)`` encodes it when it adds no BOS itself, as a user's ``generate`` and most
evaluation harnesses read a prompt). `set_prefix` records the choice in the tokenizer's
``init_kwargs``, so ``save_pretrained`` keeps it with an edited model. Both batches are frozen values
with ``.to(device)``, ``len()``, slicing and ``.chunks(size)`` for minibatching, and carry a
``data_hash`` of the items they were built from (provenance for rankings and reports).

Example:
    >>> batch = tokenize_facts(tok, ["Mira Coltan was born in"], ["Velmora"], max_len=bridge.cfg.n_ctx)  # doctest: +SKIP
    >>> logits = bridge(batch.input_ids, attention_mask=batch.attention_mask)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, TypeVar

import torch
from jaxtyping import Bool, Int
from torch import Tensor


def data_hash(items: Any) -> str:
    """sha256 of the canonical JSON of ``items`` (sorted keys, no whitespace, UTF-8)."""
    text = json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


B = TypeVar("B", bound="_Batch")


@dataclass(frozen=True, eq=False)
class _Batch:
    """Shared behaviour: device moves, length, slicing (trimming all-pad columns), chunks."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    hash: str

    # Tensors with a position axis, trimmed when slicing; tuples of strings are sliced by item.
    _POS_FIELDS: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask")

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self: B, device: torch.device | str) -> B:
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), Tensor)}
        return replace(self, **moved)

    def __getitem__(self: B, index: slice) -> B:
        if not isinstance(index, slice):
            raise TypeError(f"{type(self).__name__} supports slices only, got {index!r}")
        start, stop, step = index.indices(len(self))
        if step != 1 or stop <= start:
            raise ValueError(f"slice {index} of a batch of {len(self)} must be non-empty with step 1")
        # Right padding: a slice only needs the columns up to its own longest row.
        width = int(self.attention_mask[start:stop].sum(-1).max())
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor | tuple):
                out[f.name] = value[start:stop]
            if f.name in self._POS_FIELDS:
                out[f.name] = out[f.name][:, :width]
        whole = (start, stop) == (0, len(self))
        out["hash"] = self.hash if whole else data_hash({"parent": self.hash, "slice": [start, stop]})
        return replace(self, **out)

    def repeat(self: B, n: int) -> B:
        """``n`` stacked copies, copy-major (rows ``c * len(self) + i``): one replica per ablation.

        The hash stays the parent's: replicas are a computational device, not new data.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                out[f.name] = value.repeat(n, *([1] * (value.ndim - 1)))
            elif isinstance(value, tuple):
                out[f.name] = value * n
        return replace(self, **out)

    def take(self: B, order: Int[Tensor, " n"]) -> B:
        """The items in ``order`` (a permutation or a selection of row indices)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                out[f.name] = value[order]
            elif isinstance(value, tuple):
                out[f.name] = tuple(value[int(i)] for i in order)
        out["hash"] = data_hash({"parent": self.hash, "take": [int(i) for i in order]})
        return replace(self, **out)

    def item_keys(self) -> Int[Tensor, " batch"]:
        """A key per item from its own real tokens (a polynomial hash): the same item gets the
        same key in any batch, whatever its row or padding."""
        mask = self.attention_mask.long()
        p = 2**31 - 1
        powers = torch.ones(mask.shape[1], dtype=torch.long, device=mask.device)
        for t in range(1, len(powers)):
            powers[t] = powers[t - 1] * 1_000_003 % p
        return ((self.input_ids.long() % p) * mask * powers).sum(-1) % p + mask.sum(-1) * p

    def by_length(self: B) -> B:
        """The items shortest first, so that consecutive chunks carry little padding."""
        return self.take(torch.argsort(self.attention_mask.sum(-1), stable=True))

    def chunks(self: B, size: int) -> Iterator[B]:
        """Consecutive minibatches of at most ``size`` items."""
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        for start in range(0, len(self), size):
            yield self[start : start + size]


@dataclass(frozen=True, eq=False)
class FactBatch(_Batch):
    """Fact prompts and answers, tokenised as ``[BOS] prompt answer [pad ...]``.

    ``prompt_last[i]`` is the position of the last prompt token (its logits predict the first
    answer token); ``answer_mask[i, t]`` is True where ``input_ids[i, t]`` is an answer token;
    ``answer_ids`` are the answer tokens, left-aligned and padded, ``answer_lengths`` their counts.
    """

    prompt_last: Int[Tensor, " batch"]
    answer_mask: Bool[Tensor, "batch pos"]
    answer_ids: Int[Tensor, "batch ans"]
    answer_lengths: Int[Tensor, " batch"]
    prompts: tuple[str, ...]
    answers: tuple[str, ...]

    _POS_FIELDS: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "answer_mask")

    @property
    def score_mask(self) -> Bool[Tensor, "batch pos"]:
        """Positions whose token the metric scores: the answer tokens."""
        return self.answer_mask


@dataclass(frozen=True, eq=False)
class PassageBatch(_Batch):
    """Passages tokenised as ``[BOS] text [pad ...]``, scored on every token after the first."""

    texts: tuple[str, ...]

    @property
    def score_mask(self) -> Bool[Tensor, "batch pos"]:
        """Positions whose token the metric scores: every real token but the first."""
        mask = self.attention_mask.bool().clone()
        mask[:, 0] = False
        return mask


PREFIXES = ("bos", "eos", "none")  # `prefix_ids`: what goes before every prompt and passage
PREFIX_KEY = "loka_prefix"  # where `set_prefix` records it: the tokenizer's ``init_kwargs`` (saved with it)


def _check_prefix(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown prefix {prefix!r}: use one of {', '.join(PREFIXES)}")
    return prefix


def set_prefix(tokenizer: Any, prefix: str) -> None:
    """Make ``prefix`` (one of `PREFIXES`) what every batch built with ``tokenizer`` starts with;
    kept in its ``init_kwargs``, so a tokenizer saved with an edited model keeps it."""
    tokenizer.init_kwargs[PREFIX_KEY] = _check_prefix(prefix)


def with_prefix(tokenizer: Any, prefix: str) -> Any:
    """A shallow copy of ``tokenizer`` whose prefix is ``prefix`` (`set_prefix`); ``tokenizer`` itself
    is left as it was (the copy has its own ``init_kwargs`` and shares the vocabulary)."""
    import copy

    out = copy.copy(tokenizer)
    out.init_kwargs = dict(tokenizer.init_kwargs)
    set_prefix(out, prefix)
    return out


def prefix_of(tokenizer: Any, prefix: str | None = None) -> str:
    """``prefix``, or the tokenizer's own (`set_prefix`; default ``"bos"``)."""
    return _check_prefix(prefix or getattr(tokenizer, "init_kwargs", {}).get(PREFIX_KEY, "bos"))


def prefix_ids(tokenizer: Any, prefix: str | None = None) -> list[int]:
    """The token ids put before every prompt and passage: ``prefix`` (None: the tokenizer's own,
    `prefix_of`) — its BOS or EOS token, empty where it has none, or nothing."""
    token = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "none": None}[prefix_of(tokenizer, prefix)]
    return [] if token is None else [int(token)]


def _hashed(items: dict[str, Any], tokenizer: Any, prefix: str | None) -> str:
    """`data_hash` of ``items``, with the prefix when it is not the default (so ``bos`` hashes stay
    those of before prefixes existed, and a ``none`` batch is other data than a ``bos`` one)."""
    name = prefix_of(tokenizer, prefix)
    return data_hash(items if name == "bos" else {**items, "prefix": name})


def special_ids(tokenizer: Any, prefix: str | None = None) -> tuple[list[int], int]:
    """The prefix (`prefix_ids`) and the pad id (fallback: EOS)."""
    bos = prefix_ids(tokenizer, prefix)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad token nor an EOS token to pad with")
    return bos, int(pad)


def _encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens (one batched call: 2-3x faster than one by one)."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def _pad(rows: Sequence[list[int]], value: int) -> Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _check_length(n_tokens: int, max_len: int | None, what: str) -> None:
    if max_len is not None and n_tokens > max_len:
        raise ValueError(f"{what} is {n_tokens} tokens, longer than the model context ({max_len})")


def tokenize_facts(tokenizer: Any, prompts: list[str], answers: list[str],
                   max_len: int | None = None, prefix: str | None = None) -> FactBatch:
    """Tokenise fact prompts and their answers for teacher-forced answer scoring.

    The answer is tokenised as ``" " + answer`` unless the prompt ends in whitespace or the
    answer starts with it; prompt and answer are tokenised separately so the answer's tokens are
    exactly those the metric scores. ``max_len`` is the model context (``bridge.cfg.n_ctx``);
    ``prefix`` overrides the tokenizer's own (`prefix_ids`).
    """
    if len(prompts) != len(answers):
        raise ValueError(f"got {len(prompts)} prompts but {len(answers)} answers")
    if not prompts:
        raise ValueError("the fact set is empty: nothing to tokenise")
    bos, pad = special_ids(tokenizer, prefix)
    rows, answer_rows, last, spans = [], [], [], []
    seps = ["" if p[-1:].isspace() or a[:1].isspace() or not p else " " for p, a in zip(prompts, answers, strict=True)]
    encoded = zip(_encode(tokenizer, prompts), _encode(tokenizer, [s + a for s, a in zip(seps, answers, strict=True)]),
                  strict=True)
    for i, (answer, (prompt_ids, answer_ids)) in enumerate(zip(answers, encoded, strict=True)):
        prompt_ids = bos + prompt_ids
        answer_ids = answer_ids if answer.strip() else []
        if not answer_ids:
            raise ValueError(f"fact {i}: the answer {answer!r} tokenises to nothing")
        if not prompt_ids:
            raise ValueError(f"fact {i}: empty prompt and no prefix token: nothing predicts the answer")
        _check_length(len(prompt_ids) + len(answer_ids), max_len, f"fact {i} (prompt + answer)")
        rows.append(prompt_ids + answer_ids)
        answer_rows.append(answer_ids)
        last.append(len(prompt_ids) - 1)
        spans.append((len(prompt_ids), len(prompt_ids) + len(answer_ids)))
    input_ids = _pad(rows, pad)
    positions = torch.arange(input_ids.shape[1])
    starts, stops = torch.tensor(spans).T
    return FactBatch(
        input_ids=input_ids,
        attention_mask=_pad([[1] * len(r) for r in rows], 0),
        hash=_hashed({"prompts": list(prompts), "answers": list(answers)}, tokenizer, prefix),
        prompt_last=torch.tensor(last, dtype=torch.long),
        answer_mask=(positions >= starts[:, None]) & (positions < stops[:, None]),
        answer_ids=_pad(answer_rows, pad),
        answer_lengths=torch.tensor([len(a) for a in answer_rows], dtype=torch.long),
        prompts=tuple(prompts),
        answers=tuple(answers),
    )


def tokenize_passages(tokenizer: Any, texts: list[str], max_len: int | None = None,
                      prefix: str | None = None, scored: bool = True) -> PassageBatch:
    """Tokenise passages as ``[BOS] text`` (the prefix: `prefix_ids`), right-padded; each needs at
    least one scored token (``scored=False``: one token is enough, for reading states, not scores)."""
    if not texts:
        raise ValueError("the passage set is empty: nothing to tokenise")
    bos, pad = special_ids(tokenizer, prefix)
    rows = []
    for i, (text, ids) in enumerate(zip(texts, _encode(tokenizer, texts), strict=True)):
        ids = bos + ids
        if not ids:
            raise ValueError(f"passage {i} ({text!r}) has no token")
        if scored and len(ids) < 2:
            raise ValueError(f"passage {i} ({text!r}) has no token to score after the first")
        _check_length(len(ids), max_len, f"passage {i}")
        rows.append(ids)
    return PassageBatch(
        input_ids=_pad(rows, pad),
        attention_mask=_pad([[1] * len(r) for r in rows], 0),
        hash=_hashed({"texts": list(texts)}, tokenizer, prefix),
        texts=tuple(texts),
    )
