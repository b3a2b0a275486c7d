"""Where a reverse query's answer still lives after `loka-deep`'s lookup edit (`bench.deep_real --trace`).

The lookup stage steers the forget subjects' states after block ``layer`` at the name's tokens,
trained on sentences that end with the name. A reverse query starts with it ("Barty Crouch
works at the Ministry of" -> "Magic"), so two things can keep its answer: the name's tokens in
that new position may not have moved, and the words after the name may already have read it
(attention in blocks ``0..layer``) before the steered block. Per reverse query, on the edited
model against the base:

- ``moved``: each token's state after block ``layer``, ``||edited - base|| / ||base||``, and its
  mean over the name's tokens and over the words after it;
- ``margin``: the answer's first-token log-prob minus the best other token's (base, edited);
- ``after_stranger``: the edited model's margin with the states after block ``layer`` of the
  words after the name replaced by the base model's states of the same words in the same query
  about a stranger (`STRANGER`): what is left once the words after the name read a stranger;
- ``name_stranger``: the same with the name's tokens replaced by the mean of the stranger's
  name tokens' base states: what is left once the name itself reads as a stranger's.

Example:
    >>> trace(base, edited, tok, data.facts[("forget", "reverse")], layer=8)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from bench.deep_real import STRANGER
from loka.methods.localized.deep_lookup import block_output_edited, hidden_at
from loka.methods.localized.deep_rows import Rows, build_rows, subject_mask
from loka.methods.localized.deep_stranger import twin_positions


def _query(tok: Any, text: str, name: str) -> tuple[Rows, list[int]]:
    """One row ``BOS + text`` and the positions of the tokens that spell ``name``."""
    rows, offsets = build_rows(tok, [text])
    return rows, subject_mask(offsets, [text], [name], rows.ids.shape[1])[0].nonzero().flatten().tolist()


def states_after(model: Any, rows: Rows, layer: int) -> Tensor:
    """``[pos d]``: the residual stream after block ``layer`` of the one row ``rows``."""
    with torch.no_grad():
        return hidden_at(model, rows, layer)[0].float()


def margin(model: Any, ids: Tensor, answer: int, layer: int = 0, patch: dict[int, Tensor] | None = None) -> float:
    """The next token's log-prob of ``answer`` minus the best other token's, with the states after
    block ``layer`` at ``patch``'s positions replaced by its vectors."""
    def put(hidden: Tensor) -> Tensor:
        hidden = hidden.clone()
        for pos, vec in (patch or {}).items():
            hidden[0, pos] = vec.to(hidden.dtype)
        return hidden

    with block_output_edited(model, layer, put) if patch else contextlib.nullcontext(), torch.no_grad():
        logp = model(input_ids=ids[None]).logits[0, -1].float().log_softmax(-1)
    others = logp.clone()
    others[answer] = -float("inf")
    return round(float(logp[answer] - others.max()), 3)


def trace_one(base: Any, edited: Any, tok: Any, prompt: str, subject: str, answer: str, layer: int,
              stranger: str = STRANGER) -> dict[str, Any]:
    """The module doc's columns for one reverse query."""
    rows, name = _query(tok, prompt, subject)
    twin_rows, twin_name = _query(tok, prompt.replace(subject, stranger, 1), stranger)
    ids, twin = rows.ids[0], twin_rows.ids[0]
    answer_id = int(tok(" " + answer, add_special_tokens=False).input_ids[0])
    b, e, tb = states_after(base, rows, layer), states_after(edited, rows, layer), states_after(base, twin_rows, layer)
    moved = ((e - b).norm(dim=-1) / b.norm(dim=-1).clamp_min(1e-6)).tolist()
    after = list(range(max(name) + 1, len(ids))) if name else []
    pairs = twin_positions(ids, twin, after)  # the words after the name: the same tokens, aligned from the end
    row: dict[str, Any] = {
        "prompt": prompt, "answer": answer, "tokens": [tok.decode([int(i)]) for i in ids.tolist()],
        "moved": [round(m, 3) for m in moved],
        "moved_name": round(sum(moved[p] for p in name) / len(name), 3) if name else None,
        "moved_after": round(sum(moved[p] for p in after) / len(after), 3) if after else None,
        "margin_base": margin(base, ids, answer_id), "margin_edited": margin(edited, ids, answer_id),
        "after_stranger": margin(edited, ids, answer_id, layer, {p: tb[q] for p, q in pairs.items()})
        if after and len(pairs) == len(after) else None,
        "name_stranger": margin(edited, ids, answer_id, layer, {p: tb[twin_name].mean(0) for p in name})
        if name and twin_name else None,
    }
    return row


def trace(base: Any, edited: Any, tok: Any, facts: Sequence[Any], layer: int) -> list[dict[str, Any]]:
    """`trace_one` for every fact (reverse queries: ``prompt``, ``subject``, ``answer``)."""
    return [{"subject": f.subject, **trace_one(base, edited, tok, f.prompt, f.subject, f.answer, layer)}
            for f in facts]
