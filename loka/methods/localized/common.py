"""What LOKA's localized methods share: settings, fact batches, an analysis bridge, losses.

Analysis runs on a TransformerBridge over a *deep copy* of the caller's model: booting a bridge
rewires the wrapped HF model in place (a GPT-NeoX bridge even computes attention with private
copies of the fused QKV weight), so the caller's model stays a plain HF model and only ever
receives finished weights (`copy_weights_back`).

Example:
    >>> forget, retain = fact_batches(tokenizer, task)  # doctest: +SKIP
    >>> bridge = analysis_bridge(hf_model, tokenizer)  # doctest: +SKIP
    >>> ranking = rank_on(bridge, forget, retain, cfg)  # doctest: +SKIP
    >>> logits = forward(hf_model, forget)  # doctest: +SKIP
    >>> accuracy(logits, forget), forget_unlikelihood(logits, forget)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from attribution import METHODS, ComponentKind, Ranking, parse_kinds, rank
from attribution._common import input_device
from attribution.data import FactBatch, tokenize_facts
from loka.errors import LokaError
from loka.evaluate import first_token_hits
from loka.memory import is_large
from loka.methods.config import MethodConfig, knob
from loka.methods.task import UnlearnTask


@dataclass(frozen=True)
class LocalizedConfig(MethodConfig):
    """How a localized method ranks components (attribution) before it edits them."""

    kinds: str = knob("neuron,head", help="component kinds to rank and edit: neuron, head or neuron,head")
    ranking_method: str = knob("atp", help="attribution method: " + ", ".join(sorted(METHODS)))
    weight: float = knob(1.0, ge=0, help="retain weight of the attribution contrast")

    def validate(self) -> None:
        if self.ranking_method not in METHODS:
            raise self.fail(f"ranking_method must be one of {', '.join(sorted(METHODS))}, "
                            f"got {self.ranking_method!r}")
        self.kind_tuple()

    def kind_tuple(self) -> tuple[ComponentKind, ...]:
        try:
            return parse_kinds(self.kinds)
        except ValueError as e:
            raise self.fail(str(e)) from None


def rank_on(bridge: Any, forget: FactBatch, retain: FactBatch, cfg: LocalizedConfig, *,
            ablation: Literal["zero", "mean", "resample"], sample: int | None = None) -> Ranking:
    """Rank every component of ``cfg.kinds`` on ``bridge`` (hooks only; the model is unchanged).

    ``sample`` caps the retain facts scored (the first ones: pass a shuffled batch) — the retain
    effect is a mean, and a thousand facts estimate it well at a fraction of the cost.
    ``actstats`` ablates nothing, so ``ablation`` is ignored for it.

    Inside `rankings_reused` the last ranking is kept under the key of everything it read (the
    weights' sha256, the facts, the method, the ablation, the minibatch, the thread count): asked
    again for it — or for fewer component kinds, or another contrast weight — it is answered from
    there, the same scores bit for bit, with ``options["reused"]`` set.
    """
    if sample is not None:
        retain = retain[: min(sample, len(retain))]
    options: dict[str, Any] = {"progress": False} if cfg.ranking_method == "patch" else {}
    if cfg.ranking_method in ("atp", "actstats"):
        options["batch_size"] = gradient_batch_size(bridge.cfg, most=128, large=is_large(bridge))
    used = None if cfg.ranking_method == "actstats" else ablation
    kinds = cfg.kind_tuple()
    memo = _REUSED
    key = None if memo is None else _ranking_key(bridge, forget, retain, cfg.ranking_method, used, options)
    kept = memo.get(key) if memo is not None and key is not None else None
    if kept is not None and set(kinds) <= {c.kind for c in kept.components}:
        return replace(kept.of_kinds(kinds).rerank(cfg.weight), options=kept.options | {"reused": True})
    ranking = rank(bridge, forget, retain, cfg.ranking_method, used, kinds=kinds, weight=cfg.weight, **options)
    if memo is not None and key is not None:
        memo.clear()  # one ranking kept: every component's scores, a few MB
        memo[key] = ranking
    return ranking


#: `rank_on`'s last ranking under its key, inside `rankings_reused` (None: outside, nothing kept).
_REUSED: dict[tuple[Any, ...], Ranking] | None = None


@contextlib.contextmanager
def rankings_reused() -> Iterator[None]:
    """Within: `rank_on` answers a ranking it already computed on the same weights and facts
    instead of computing it again. ``loka demo`` on user data ranks for its heatmap exactly what
    ``loka-ft`` ranks next (~24 s on SmolLM2); the ranking loka-ft gets is the same bit for bit
    and the method's seconds still count it. Outside, every call ranks anew and hashes nothing."""
    global _REUSED
    outer = _REUSED
    _REUSED = {} if outer is None else outer
    try:
        yield
    finally:
        _REUSED = outer


def ranking_seconds_reused(ranking: Ranking) -> float:
    """The seconds a reused ranking took where it was computed (0 for one computed here): a
    method adds them to its own, so its cost is the same with or without the reuse."""
    return ranking.seconds if ranking.options.get("reused") else 0.0


def _ranking_key(bridge: Any, forget: FactBatch, retain: FactBatch, method: str, ablation: str | None,
                 options: dict[str, Any]) -> tuple[Any, ...] | None:
    """What a ranking depends on; None when the weights cannot be read (dispatched to meta)."""
    model = getattr(bridge, "original_model", bridge)
    digest = hashlib.sha256()
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if tensor.device.type == "meta":
            return None
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return (digest.hexdigest(), forget.hash, len(forget), retain.hash, len(retain), method, ablation,
            tuple(sorted(options.items())), torch.get_num_threads())


def gradient_batch_size(cfg: Any, *, most: int, large: bool = False) -> int:
    """Facts per minibatch of a pass that keeps every hooked activation and the graph (atp).

    Its memory grows with layers x MLP width per token: ``most`` (128) suits the worlds' 2-4
    narrow layers; a 30-layer Llama (SmolLM2-135M) gets 10, which keeps attribution's graph near
    1 GB instead of 3.4 GB for 57 retain facts in one batch. ``large`` (a model the methods
    treat as large, `loka.memory.is_large`, about to be trained in the same process) gets a
    third of that budget — 3 facts on SmolLM2, attribution's growth ~0.3 GB instead of ~0.9 GB
    (the same scores up to the order of float sums; ~1.5x the ranking's seconds) — so that
    ``loka-ft``'s whole process stays within 3x the model's float32 size (BENCHMARKS.md).
    """
    per_token = int(cfg.n_layers) * int(getattr(cfg, "d_mlp", None) or 4 * cfg.d_model)
    if large:
        return max(1, min(most, 150_000 // per_token))
    return max(8, min(most, 500_000 // per_token))


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


def analysis_bridge(hf_model: Any, tokenizer: Any, *, share_weights: bool = False) -> Any:
    """A TransformerBridge over a deep copy of ``hf_model`` (which is left untouched).

    ``share_weights``: the copy's modules are new but its parameters and buffers are
    ``hf_model``'s own tensors — no second model in memory. Only for analysis that never writes a
    weight through the bridge (ranking): an edit would land in ``hf_model`` too.
    """
    from transformer_lens.model_bridge import TransformerBridge

    shared = {id(t): t for t in (*hf_model.parameters(), *hf_model.buffers())} if share_weights else {}
    twin = copy.deepcopy(hf_model, memo=shared)
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
    batch = batch.to(input_device(model))
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
    return float(first_token_hits(first, batch.answer_ids[:, 0]).float().mean())


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


def answer_nll_at(selected: Float[Tensor, "n vocab"], batch: FactBatch) -> Tensor:
    """`answer_nll` from ``loka.evaluate.logits_at(model, batch, read_positions(batch))``."""
    targets = batch.input_ids[:, 1:][batch.answer_mask[:, 1:]].to(selected.device)
    return torch.nn.functional.cross_entropy(selected.float(), targets)


def answer_nll(logits: Float[Tensor, "batch pos vocab"], batch: FactBatch) -> Tensor:
    """Mean negative log-likelihood of every answer token of ``batch`` (teacher forced)."""
    logp = logits[:, :-1].float().log_softmax(-1)
    target = batch.input_ids[:, 1:].to(logp.device)
    mask = batch.answer_mask[:, 1:].to(logp.device)
    picked = logp.gather(-1, target[..., None]).squeeze(-1)
    return -(picked * mask).sum() / mask.sum()
