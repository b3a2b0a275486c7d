"""`loka-deep`'s optimising stages, on the shared loop (`loka.methods.loop.optimise`).

- `shared_key_repair`: subject tokens that retain people share (a first name) cannot be reset.
  Teacher: the model on the forget sentences with those tokens' input embeddings replaced by
  never-trained draws (a person it never saw). Student: the model on the real sentences,
  training ``cf_params`` (default: only the shared tokens' own input-embedding rows). Loss:
  KL(teacher || student) on the positions after the subject (template and answer) +
  ``cf_retain_weight`` x answer CE on retain facts (a random batch and the facts that use a
  shared token) [+ ``cf_name_weight`` x the subject tokens' own log-prob pulled to an unseen
  token's level].
- `passage_erasure`: unlikelihood ``-log(1 - p(x_t))`` on the forget passages' tokens +
  ``retain_weight`` x CE on retain rows, training ``passage_params``; stops once greedy
  continuation from the passages' first ``extract_prefix`` tokens reproduces at most
  ``extract_target`` of their tokens (checked every ``check_every`` steps, before the update).

Example:
    >>> outcome = passage_erasure(model, cfg, gen, passage_rows, retain_rows)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from loka.methods.localized.deep_keys import embeddings, never_trained_draw, untrained_tokens
from loka.methods.localized.deep_rows import Rows, extraction_rate, logits_at, rows_nll
from loka.methods.loop import LoopSettings, Outcome, StepLoss, optimise

RETAIN_NLL_LIMIT = 20.0  # nats/token: above it the divergence guard restores the last good weights


def param_group(model: Any, spec: str) -> list[tuple[str, torch.nn.Parameter]]:
    """``"all"``, ``"mlp"`` (every layer), ``"mlp:0,1"``, ``"attn:0"``, ``"embed"``; joined with ``+``."""
    out: dict[str, torch.nn.Parameter] = {}
    for part in spec.split("+"):
        kind, _, layers = part.partition(":")
        wanted = None if not layers else {int(x) for x in layers.split(",")}
        for name, p in model.named_parameters():
            layer = next((int(b) for b in name.split(".") if b.isdigit()), None)
            if kind == "all":
                hit = True
            elif kind == "embed":
                hit = "embed" in name
            elif kind in ("mlp", "attn"):
                keys = (".mlp.",) if kind == "mlp" else (".attention.", ".attn.", ".self_attn.")
                hit = any(k in name for k in keys) and (wanted is None or layer in wanted)
            else:
                raise ValueError(f"unknown parameter group {part!r}")
            if hit:
                out[name] = p
    return list(out.items())


def _embedding_rows(model: Any, spec: str, rows: list[int]) -> tuple[list[tuple[str, Any]], dict[str, Tensor]]:
    """The embedding tables ``subject_embed`` (input) or ``subject_embed_io`` (and output) names,
    with masks of ``rows``, plus any ``+group`` (`param_group`)."""
    head, _, extra = spec.partition("+")
    e_in, e_out = embeddings(model)
    named: list[tuple[str, Any]] = [("embed_in", e_in)]
    if head == "subject_embed_io" and e_out is not e_in:
        named.append(("embed_out", e_out))
    masks = {}
    for n, p in named:
        m = torch.zeros_like(p, dtype=torch.bool)
        m[torch.tensor(rows)] = True
        masks[n] = m
    return named + (param_group(model, extra) if extra else []), masks


def _trained(model: Any, named: list[tuple[str, Any]]) -> dict[str, bool]:
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(False)
    for _, p in named:
        p.requires_grad_(True)
    return flags


def _restore(model: Any, flags: dict[str, bool]) -> None:
    for n, p in model.named_parameters():
        p.requires_grad_(flags[n])
        p.grad = None


def shared_key_repair(model: Any, cfg: Any, gen: torch.Generator, f_rows: Rows, f_subj: Tensor,
                      reset_ids: list[int], retain: Rows) -> tuple[Outcome | None, dict[str, Any]]:
    """Stage 2 (module doc)."""
    e_in = embeddings(model)[0]
    subj = f_subj & ~torch.isin(f_rows.ids, torch.tensor(reset_ids or [-1]))
    shared = sorted({int(t) for t in f_rows.ids[subj].tolist()})
    if not shared:
        return None, {"stage": "shared_key_repair", "steps": 0, "note": "no shared subject token"}
    width = f_rows.ids.shape[1]
    last = torch.where(subj.any(-1), width - 1 - subj.flip(-1).float().argmax(-1), width)
    kl_where = (torch.arange(width - 1)[None] >= last[:, None]) & f_rows.mask[:, 1:].bool()
    name_where = subj[:, 1:] & f_rows.mask[:, 1:].bool() if cfg.cf_name_weight else torch.zeros_like(kl_where)
    union = kl_where | name_where
    keep = union.any(-1)
    if not keep.any():  # every subject ends the row ("... is called Ron" -> "Weasley", subject "Ron Weasley")
        return None, {"stage": "shared_key_repair", "steps": 0,
                      "note": "no forget sentence goes on after its subject (the subject names the answer)"}
    rows = Rows(f_rows.ids[keep], f_rows.mask[keep], union[keep])
    kl_where, name_where, subj = kl_where[keep], name_where[keep], subj[keep]
    draw = never_trained_draw(model, len(shared), gen)
    fake = draw[0] if draw is not None else e_in.detach().std() * torch.randn(len(shared), e_in.shape[1], generator=gen)
    untrained = untrained_tokens(model)
    with torch.no_grad():
        emb = e_in[rows.ids].clone()
        for t, v in zip(shared, fake, strict=True):
            emb[(rows.ids == t) & subj] = v
        teacher = logits_at(model, rows, embeds=emb).log_softmax(-1)  # [n_union, vocab], row-major
        ref = teacher[:, untrained].mean(-1) if untrained.any() else teacher.mean(-1)
    is_kl, is_name = kl_where[rows.score], name_where[rows.score]
    starts = torch.cumsum(rows.score.sum(-1), 0) - rows.score.sum(-1)
    if cfg.cf_params.startswith("subject_embed"):
        named, masks = _embedding_rows(model, cfg.cf_params, shared)
    else:
        named, masks = param_group(model, cfg.cf_params), {}
    focus = torch.nonzero(torch.isin(retain.ids, torch.tensor(shared)).any(-1)).squeeze(-1)

    def loss_fn(step: int) -> StepLoss:
        pick = torch.randperm(len(rows), generator=gen)[: cfg.cf_batch]
        batch = rows.take(pick)
        t_idx = torch.cat([torch.arange(int(starts[i]), int(starts[i]) + int(rows.score[i].sum()))
                           for i in pick.tolist()])
        s_logp = logits_at(model, batch).log_softmax(-1)
        t_logp, k_sel, n_sel = teacher[t_idx], is_kl[t_idx], is_name[t_idx]
        kl = (t_logp[k_sel].exp() * (t_logp[k_sel] - s_logp[k_sel])).sum(-1).mean()
        if n_sel.any():
            target = batch.ids[:, 1:][batch.score][n_sel]
            gap = s_logp[n_sel].gather(-1, target[:, None]).squeeze(-1) - ref[t_idx][n_sel]
            kl = kl + cfg.cf_name_weight * (gap.pow(2) if cfg.cf_name_loss == "sq" else torch.relu(gap)).mean()
        r_pick = torch.randperm(len(retain), generator=gen)[: cfg.retain_batch]
        if len(focus):
            r_pick = torch.cat([r_pick, focus[torch.randperm(len(focus), generator=gen)[: cfg.cf_focus_batch]]])
        r = rows_nll(model, retain.take(r_pick))
        return StepLoss(kl + cfg.cf_retain_weight * r, {"kl": float(kl.detach()), "retain_nll": float(r.detach())}, 2)

    flags = _trained(model, named)
    try:
        outcome = optimise(model, loss_fn, LoopSettings(lr=cfg.cf_lr), total_steps=cfg.cf_steps,
                           params=named, param_mask=masks or None,
                           limits={"retain_nll": RETAIN_NLL_LIMIT}, progress=False, desc="shared-key repair")
    finally:
        _restore(model, flags)
    return outcome, {"stage": "shared_key_repair", "steps": outcome.steps, "shared_tokens": len(shared),
                     "rows": len(rows), "focus_rows": len(focus)}


def passage_erasure(model: Any, cfg: Any, gen: torch.Generator, p_rows: Rows, retain: Rows, n_pre: int = 1
                    ) -> tuple[Outcome, dict[str, Any]]:
    """Stage 3 (module doc); ``n_pre``: the prefix tokens first in each row (`extraction_rate`)."""
    named = param_group(model, cfg.passage_params)

    def loss_fn(step: int) -> StepLoss:
        rate = None
        if cfg.extract_target is not None and (step - 1) % cfg.check_every == 0:
            rate = extraction_rate(model, p_rows, cfg.extract_prefix, n_pre)
        logits = logits_at(model, p_rows)
        p = logits.log_softmax(-1).gather(-1, p_rows.ids[:, 1:][p_rows.score][:, None]).squeeze(-1).exp()
        unlikelihood = -torch.log1p(-p.clamp(max=1 - 1e-6)).mean()
        r = rows_nll(model, retain.take(torch.randperm(len(retain), generator=gen)[: cfg.retain_batch]))
        parts = {"unlikelihood": float(unlikelihood.detach()), "retain_nll": float(r.detach())}
        return StepLoss(unlikelihood + cfg.retain_weight * r, parts, 2, rate)

    flags = _trained(model, named)
    try:
        outcome = optimise(model, loss_fn, LoopSettings(lr=cfg.passage_lr, target=cfg.extract_target),
                           total_steps=cfg.passage_steps, params=named,
                           limits={"retain_nll": RETAIN_NLL_LIMIT}, progress=False, desc="passage erasure")
    finally:
        _restore(model, flags)
    return outcome, {"stage": "passages", "steps": outcome.steps, "stopped": outcome.stopped,
                     "extraction": outcome.final_forget_accuracy}
