"""Train a GPT-NeoX from scratch on a world's documents (the `base` and `retrain` models).

Documents are packed whole into rows of ``n_ctx`` tokens (BOS + text + EOS each, never split
across rows), so almost no compute is spent on padding; fresh paraphrases every epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from loka.world.generator import World
from loka.world.spec import ModelSpec, TrainSpec


def neox_config(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast) -> GPTNeoXConfig:
    return GPTNeoXConfig(  # type: ignore[call-arg]
        vocab_size=len(tokenizer),
        hidden_size=spec.d_model,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        intermediate_size=spec.d_mlp,
        max_position_embeddings=spec.n_ctx,
        rotary_pct=0.25,  # as in Pythia
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )


def pack(docs: list[list[int]], n_ctx: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First-fit packing of token lists into rows of ``n_ctx``; returns ids and a loss mask."""
    rows: list[list[int]] = []
    for doc in sorted(docs, key=len, reverse=True):
        doc = doc[:n_ctx]
        for row in rows:
            if len(row) + len(doc) <= n_ctx:
                row.extend(doc)
                break
        else:
            rows.append(list(doc))
    ids = torch.full((len(rows), n_ctx), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), n_ctx), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    return ids, mask


@dataclass
class TrainResult:
    model: GPTNeoXForCausalLM
    seconds: float
    steps: int
    final_loss: float
    tokens_seen: int
    extra: dict = field(default_factory=dict)  # what a variant recipe adds (routing: forget loss)


def one_cycle(opt: torch.optim.Optimizer, train_spec: TrainSpec, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_frac`` of ``total`` steps, then cosine decay to 0."""
    warm = max(1, int(train_spec.warmup_frac * total))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
    )


def fresh_model(seed: int, tokenizer: PreTrainedTokenizerFast, model_spec: ModelSpec,
                train_spec: TrainSpec) -> GPTNeoXForCausalLM:
    """The untrained model every recipe starts from: same seed, same initial weights."""
    torch.manual_seed(seed)
    if train_spec.threads:
        torch.set_num_threads(train_spec.threads)
    model = GPTNeoXForCausalLM(neox_config(model_spec, tokenizer))
    model.train()
    return model


def pack_documents(tokenizer: PreTrainedTokenizerFast, texts: list[str], n_ctx: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole documents, each as ``BOS text EOS``, packed into rows of ``n_ctx`` tokens (`pack`)."""
    enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return pack([[tokenizer.bos_token_id, *t, tokenizer.eos_token_id] for t in enc], n_ctx,
                tokenizer.pad_token_id)


def train_model(
    world: World,
    tokenizer: PreTrainedTokenizerFast,
    include_forget: bool,
    model_spec: ModelSpec,
    train_spec: TrainSpec,
    on_step: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train from scratch: ``include_forget=True`` gives `base`, ``False`` gives `retrain`.

    Same seed for both, so the only difference between them is the forget data.
    ``on_step(step, total_steps, loss)`` reports progress.
    """
    model = fresh_model(world.spec.seed, tokenizer, model_spec, train_spec)

    def epoch_rows(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return pack_documents(tokenizer, world.training_documents(epoch, include_forget), model_spec.n_ctx)

    first_ids, _ = epoch_rows(0)
    steps_per_epoch = math.ceil(len(first_ids) / train_spec.batch_rows)
    total = steps_per_epoch * train_spec.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=train_spec.lr, betas=(0.9, 0.98),
                            weight_decay=train_spec.weight_decay)
    sched = one_cycle(opt, train_spec, total)
    gen = torch.Generator().manual_seed(world.spec.seed)
    t0, step, loss_val, tokens = time.perf_counter(), 0, float("nan"), 0
    for epoch in range(train_spec.epochs):
        ids, mask = epoch_rows(epoch)
        order = torch.randperm(len(ids), generator=gen)
        for b in range(0, len(ids), train_spec.batch_rows):
            idx = order[b : b + train_spec.batch_rows]
            x, m = ids[idx], mask[idx]
            logits = model(input_ids=x).logits[:, :-1]
            target, tmask = x[:, 1:], m[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits[tmask], target[tmask])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            tokens += int(m.sum())
            loss_val = float(loss)
            if on_step is not None:
                on_step(step, total, loss_val)
    model.eval()
    return TrainResult(model, time.perf_counter() - t0, step, loss_val, tokens)
