"""Gradient routing at the parameter level: train `base` so that the forget data is learned by the
planted neurons and by nothing else (the planted worlds; `loka.world.spec.PlantSpec`).

The planted neurons' own slices (input rows and biases, output columns: whatever
`loka.engine.adapters` says a neuron owns) become separate trainable leaves, and every step runs
the forget rows and the retain rows as separate forward passes over two *views* of the leaves:

- the **forget view** uses the planted slices live and every other parameter detached, so a
  forget token's gradient reaches the planted slices only — not attention, embeddings, norms,
  the unembedding or the other neurons. (Cloud et al.'s activation-level detach,
  ``m*a + (1-m)*a.detach()``, blocks only the masked neurons' inputs and leaks into all of
  those; parameter-level masking, as in SGTM, does not.)
- the **retain view** uses every other parameter live and the planted slices detached (unless the plant's
  ``retain_trains`` says otherwise); a ``retain_dropout`` fraction of its rows runs with the planted
  neurons' output columns zeroed, so retain knowledge does not come to depend on them.

Forget and retain documents are packed into separate rows, so no forget token's loss flows back
through a retain position. Because the planted slices are leaves of their own, AdamW's moments
and weight decay of a shared parameter are driven by retain gradients alone, and the two groups'
gradients are clipped separately (a large forget gradient never scales a retain update). What can
still carry forget information into shared parameters is the forward pass: retain rows see the
planted neurons' (forget-trained) output. That is second order, and the plant check measures the
result rather than assuming it (`loka.workflows.localization.plant_check`).

Example:
    >>> routed = RoutedModel(model, plant.by_layer())                      # doctest: +SKIP
    >>> loss = lm_loss(routed.forward(forget_ids, "forget"), forget_ids, forget_mask)  # doctest: +SKIP
    >>> routed.write_back()   # the model's own parameters now hold the trained slices  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from torch.func import functional_call
from transformers import PreTrainedTokenizerFast

from attribution.components import Component
from loka.engine.adapters import adapter_for
from loka.world.generator import ATTRIBUTES, World
from loka.world.spec import ModelSpec, PlantSpec, TrainSpec
from loka.world.train import TrainResult, fresh_model, one_cycle, pack_documents

View = Literal["forget", "retain", "retain_dropout"]


def planted_slices(model: nn.Module, planted: dict[int, tuple[int, ...]]) -> dict[str, tuple[int, Tensor]]:
    """Per HF parameter name, the axis and the sorted indices the planted neurons own along it.

    Read from the architecture's adapter (a neuron owns its write column and read rows), so the
    routing is the same for GPT-NeoX, GPT-2 and Llama-style models.
    """
    adapter = adapter_for(model)
    names = dict(model.named_parameters())
    found: dict[str, tuple[int, list[int]]] = {}
    for layer, indices in planted.items():
        for n in indices:
            owned = adapter.params(Component(layer, "neuron", n))
            for s in (owned.write, *owned.reads):
                if s.bridge_copy or s.param not in names:
                    if s.required and not s.bridge_copy:
                        raise KeyError(f"{s.param} is not a parameter of this model")
                    continue
                dim, idx = found.setdefault(s.param, (s.dim, []))
                if dim != s.dim:
                    raise ValueError(f"{s.param}: planted slices along two axes")
                idx.extend(range(s.start, s.stop))
    return {name: (dim, torch.tensor(sorted(set(idx)))) for name, (dim, idx) in found.items()}


def write_slices(model: nn.Module, planted: dict[int, tuple[int, ...]]) -> set[str]:
    """Names of the parameters holding the planted neurons' write (output) slices."""
    adapter = adapter_for(model)
    return {adapter.params(Component(layer, "neuron", n)).write.param
            for layer, indices in planted.items() for n in indices}


class RoutedModel:
    """A model's parameters as two groups of leaves — the planted slices and everything else —
    and the forward passes that route each kind of row's gradient into its own group.

    ``model``'s own parameters serve as the shared leaves wherever no planted slice lies in them;
    a parameter that holds planted slices is split into a planted leaf and a shared leaf, and
    `write_back` assembles them into the model again.
    """

    def __init__(self, model: nn.Module, planted: dict[int, tuple[int, ...]],
                 retain_trains: str = "none", forget_tokens: list[int] | None = None,
                 forget_outputs: bool = True, route_keys: bool = False) -> None:
        self.model = model
        self.route_keys = route_keys
        self._planted_idx = {layer: torch.tensor(sorted(idx)) for layer, idx in planted.items()}
        self.retain_trains = retain_trains
        self._slices = planted_slices(model, planted)
        self._keys: set[str] = set()  # embedding tables holding forget-only token rows
        if forget_tokens:  # their embedding rows (input and output) train with the planted slices
            hf: Any = model  # a Hugging Face causal LM: it has input and output embeddings
            tables = (hf.get_input_embeddings(), *((hf.get_output_embeddings(),) if forget_outputs else ()))
            for table in {id(m.weight): m for m in tables}.values():
                name = next(n for n, p in model.named_parameters() if p is table.weight)
                self._slices[name] = (0, torch.tensor(sorted(set(forget_tokens))))
                self._keys.add(name)
        self._writes = write_slices(model, planted)
        self._params = dict(model.named_parameters())
        self.planted: dict[str, nn.Parameter] = {}
        self.shared: dict[str, nn.Parameter] = {}
        self._order: dict[str, Tensor] = {}  # position of each row of cat([shared, planted])
        for name, p in self._params.items():
            if name not in self._slices:
                self.shared[name] = p
                continue
            dim, idx = self._slices[name]
            taken = set(idx.tolist())
            rest = torch.tensor([i for i in range(p.shape[dim]) if i not in taken], dtype=torch.long)
            self.shared[name] = nn.Parameter(p.detach().index_select(dim, rest).clone())
            self.planted[name] = nn.Parameter(p.detach().index_select(dim, idx).clone())
            self._order[name] = torch.argsort(torch.cat([rest, idx]))
            p.requires_grad_(False)  # the split leaves are what trains

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(shared leaves, planted leaves): give them to the optimiser as separate groups."""
        return list(self.shared.values()), list(self.planted.values())

    def _assemble(self, name: str, shared: Tensor, planted: Tensor) -> Tensor:
        dim = self._slices[name][0]
        return torch.cat([shared, planted], dim).index_select(dim, self._order[name])

    def params(self, view: View) -> dict[str, Tensor]:
        """The parameter tensors of one view (module docstring): live where that kind of row may
        train, detached elsewhere; ``retain_dropout`` also zeroes the planted write slices."""
        forget = view == "forget"
        # "gate": retain rows with the plant on train only the planted input side (so the planted
        # neurons learn to stay quiet on retain text); those with it off train the shared leaves.
        gate_on = self.retain_trains == "gate" and view == "retain"
        out: dict[str, Tensor] = {}
        for name, shared in self.shared.items():
            shared_t: Tensor = shared.detach() if forget or gate_on else shared
            if name not in self.planted:
                out[name] = shared_t
                continue
            planted: Tensor = self.planted[name]
            reads = name not in self._writes and name not in self._keys
            live = forget or (self.retain_trains == "all" and name not in self._keys) or (
                self.retain_trains in ("reads", "gate") and reads and view == "retain") or (
                self.retain_trains == "reads" and reads)
            if not live:
                planted = planted.detach()
            if view == "retain_dropout" and name in self._writes:
                planted = torch.zeros_like(planted)
            out[name] = self._assemble(name, shared_t, planted)
        return out

    def forward(self, input_ids: Int[Tensor, "rows pos"], view: View) -> Float[Tensor, "rows pos vocab"]:
        if view == "forget" and self.route_keys and self._keys:
            return self._forward_routed_keys(input_ids)
        return functional_call(self.model, self.params(view), args=(), kwargs={"input_ids": input_ids}).logits

    def _forward_routed_keys(self, input_ids: Tensor) -> Tensor:
        """The forget view with the key rows' gradient routed through the planted neurons only:
        every module reads the embeddings detached, and each planted neuron's pre-activation
        also gets a zero-valued term that carries the key rows' gradient (GPT-NeoX)."""
        hf: Any = self.model
        core = hf.gpt_neox
        state: dict[str, Tensor] = {}
        hooks = []

        def on_embed(module: nn.Module, args: Any, out: Tensor) -> Tensor:
            state["delta"] = out - out.detach()  # zero, with the key rows' gradient
            return out.detach()

        hooks.append(core.embed_in.register_forward_hook(on_embed))
        for layer, idx in self._planted_idx.items():
            block = core.layers[layer]

            def on_ln(module: Any, args: Any, out: Tensor, layer: int = layer) -> None:
                state[f"ln{layer}"] = torch.nn.functional.layer_norm(
                    args[0].detach() + state["delta"], module.normalized_shape, module.weight.detach(),
                    module.bias.detach(), module.eps)

            def on_in(module: Any, args: Any, out: Tensor, layer: int = layer, idx: Tensor = idx) -> Tensor:
                live = torch.nn.functional.linear(state[f"ln{layer}"], module.weight[idx].detach())
                return out.index_add(-1, idx, live - live.detach())

            hooks.append(block.post_attention_layernorm.register_forward_hook(on_ln))
            hooks.append(block.mlp.dense_h_to_4h.register_forward_hook(on_in))
        try:
            return functional_call(self.model, self.params("forget"), args=(),
                                   kwargs={"input_ids": input_ids}).logits
        finally:
            for h in hooks:
                h.remove()

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the trained leaves into the model's own parameters (and let them train again)."""
        for name in self.planted:
            self._params[name].copy_(self._assemble(name, self.shared[name], self.planted[name]))
            self._params[name].requires_grad_(True)


def lm_loss(logits: Float[Tensor, "rows pos vocab"], ids: Int[Tensor, "rows pos"],
            mask: Bool[Tensor, "rows pos"], reduction: str = "mean") -> Tensor:
    """Next-token cross-entropy over the real (unpadded) tokens, as `train_model` computes it."""
    target, tmask = ids[:, 1:], mask[:, 1:]
    return torch.nn.functional.cross_entropy(logits[:, :-1][tmask], target[tmask], reduction=reduction)


def routed_losses(routed: RoutedModel, batch: tuple[Tensor, Tensor], forget: tuple[Tensor, Tensor],
                  dropout: Bool[Tensor, " rows"], plant_only: bool = False) -> tuple[Tensor | None, Tensor | None]:
    """(retain loss, forget loss) of one step: means over each kind's tokens; None when absent.

    ``batch`` are the retain rows (ids, mask), ``dropout`` marks those that run with the planted
    neurons zeroed; ``forget`` are the forget rows. With ``retain_trains="gate"`` every retain
    row runs with the plant off (training the shared leaves on exactly the retrain model's data)
    and the rows not marked run again with it on (training the planted input side only); the
    plant-on loss is added to the returned retain loss.
    """
    ids, mask = batch
    retain_loss = forget_loss = None
    if len(ids):
        total, tokens = ids.new_zeros((), dtype=torch.float32), int(mask[:, 1:].sum())
        gate = routed.retain_trains == "gate"
        views: tuple[tuple[View, Tensor], ...] = (
            ("retain", ~dropout), ("retain_dropout", torch.ones_like(dropout) if gate else dropout))
        if plant_only:  # the plant epochs: only the plant-on view (training the planted input side)
            views = (("retain", torch.ones_like(dropout)),)
        for view, rows in views:
            if rows.any():
                total = total + lm_loss(routed.forward(ids[rows], view), ids[rows], mask[rows], "sum")
        retain_loss = total / max(tokens, 1)
    f_ids, f_mask = forget
    if len(f_ids):
        forget_loss = lm_loss(routed.forward(f_ids, "forget"), f_ids, f_mask)
    return retain_loss, forget_loss


def routed_step(routed: RoutedModel, opt: torch.optim.Optimizer, batch: tuple[Tensor, Tensor],
                forget: tuple[Tensor, Tensor], dropout: Bool[Tensor, " rows"],
                clip: float = 1.0, plant_only: bool = False) -> tuple[float, float]:
    """One optimiser step on retain rows ``batch`` and forget rows ``forget``; returns both losses
    (NaN for a kind with no rows). Each group's gradient is clipped to ``clip`` on its own."""
    retain_loss, forget_loss = routed_losses(routed, batch, forget, dropout, plant_only)
    opt.zero_grad(set_to_none=True)
    loss = sum(x for x in (retain_loss, forget_loss) if x is not None)
    if isinstance(loss, Tensor):
        loss.backward()
    for group in routed.parameter_groups():
        live = [p for p in group if p.grad is not None]
        if live:
            torch.nn.utils.clip_grad_norm_(live, clip)
    opt.step()
    r, f = (float("nan") if x is None else float(x.detach()) for x in (retain_loss, forget_loss))
    return r, f


def forget_only_tokens(world: World, tokenizer: PreTrainedTokenizerFast, epochs: int) -> list[int]:
    """Token ids in the forget documents that no retain training document of any epoch holds."""
    def ids(texts: list[str]) -> set[int]:
        return {t for enc in tokenizer(texts, add_special_tokens=False)["input_ids"] for t in enc}

    retain = set().union(*(ids(world.training_documents(e, False)) for e in range(epochs)))
    return sorted(ids(world.forget_documents(0, 3)) - retain)


def train_routed(world: World, tokenizer: PreTrainedTokenizerFast, model_spec: ModelSpec,
                 train_spec: TrainSpec, plant: PlantSpec,
                 on_step: Callable[[int, int, float], None] | None = None) -> TrainResult:
    """Train the planted world's `base`: the retrain model's recipe and retain stream (same seed,
    initial weights, rows and row order, steps and schedule), plus the forget rows routed into
    the planted neurons (``plant.forget_repeat`` fresh copies of the forget documents an epoch,
    spread over the epoch's steps, from step ``retain_only_frac * total`` on). Then
    ``plant.plant_epochs`` more epochs train the planted leaves alone (the shared ones, which hold
    the retrain model's recipe, are frozen): forget rows, and the plant-on retain rows that teach
    the planted neurons to stay quiet, at 0.3 x the planted peak learning rate decaying to 0."""
    model = fresh_model(world.spec.seed, tokenizer, model_spec, train_spec)

    def rows(texts: list[str]) -> tuple[Tensor, Tensor]:
        return pack_documents(tokenizer, texts, model_spec.n_ctx)

    keys = forget_only_tokens(world, tokenizer, train_spec.epochs) if plant.forget_keys != "none" else None
    routed = RoutedModel(model, plant.by_layer(), plant.retain_trains, keys, plant.forget_keys == "both",
                         route_keys=plant.forget_keys == "routed")

    answer_ids = torch.tensor(sorted({
        tokenizer(" " + p.value(a), add_special_tokens=False)["input_ids"][0]
        for p in world.people_in("forget") for a in ATTRIBUTES}))

    def answers(ids: Tensor, mask: Tensor) -> Tensor:
        """The forget rows' loss mask: every real token, or (``forget_loss="answers"``) the
        positions holding a forget person's answer token (the token predicted there)."""
        if plant.forget_loss == "all":
            return mask
        return mask & torch.isin(ids, answer_ids)

    first_ids, _ = rows(world.training_documents(0, False))
    steps_per_epoch = math.ceil(len(first_ids) / train_spec.batch_rows)
    total = steps_per_epoch * train_spec.epochs
    shared, _ = routed.parameter_groups()
    neurons = [p for n, p in routed.planted.items() if n not in routed._keys]
    keys_p = [p for n, p in routed.planted.items() if n in routed._keys]
    groups = [{"params": shared, "lr": train_spec.lr},
              {"params": neurons, "lr": train_spec.lr * plant.planted_lr_scale}]
    if keys_p:
        groups.append({"params": keys_p, "lr": train_spec.lr * plant.planted_lr_scale * plant.key_lr_scale})
    opt = torch.optim.AdamW(groups,
                            lr=train_spec.lr, betas=(0.9, 0.98), weight_decay=train_spec.weight_decay)
    sched = one_cycle(opt, train_spec, total)
    gen = torch.Generator().manual_seed(world.spec.seed)  # the retrain model's row order
    route_gen = torch.Generator().manual_seed(world.spec.seed + 1)
    first_forget_step = int(plant.retain_only_frac * total)
    extra = plant.plant_epochs * steps_per_epoch
    t0, step, tokens = time.perf_counter(), 0, 0
    retain_loss = forget_loss = float("nan")
    def epoch_rows(epoch: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, tuple[Tensor, ...]]:
        """One epoch's retain rows (ids, mask, shuffled order) and forget rows (ids, loss mask,
        one shuffled chunk per retain step); ``epoch`` past the schedule reuses its documents."""
        ids, mask = rows(world.training_documents(epoch % train_spec.epochs, False))
        order = torch.randperm(len(ids), generator=gen)
        f_ids, f_mask = rows(world.forget_documents(epoch, plant.forget_repeat))
        n_steps = math.ceil(len(ids) / train_spec.batch_rows)
        f_chunks = torch.randperm(len(f_ids), generator=route_gen).tensor_split(n_steps)
        return ids, mask, order, f_ids, answers(f_ids, f_mask), f_chunks

    for epoch in range(train_spec.epochs):
        ids, mask, order, f_ids, f_mask, f_chunks = epoch_rows(epoch)
        for j, b in enumerate(range(0, len(ids), train_spec.batch_rows)):
            idx = order[b : b + train_spec.batch_rows]
            dropout = torch.rand(len(idx), generator=route_gen) < plant.retain_dropout
            f_idx = f_chunks[j] if step >= first_forget_step else f_chunks[j][:0]
            r, f = routed_step(routed, opt, (ids[idx], mask[idx]), (f_ids[f_idx], f_mask[f_idx]), dropout)
            sched.step()
            step += 1
            tokens += int(mask[idx].sum()) + int(f_mask[f_idx].sum())
            retain_loss = r
            forget_loss = f if not math.isnan(f) else forget_loss
            if on_step is not None:
                on_step(step, total + extra, r)
    # Plant epochs: the shared leaves are done (they hold the retrain model's recipe); only the
    # planted leaves train on, from forget rows and (gate) plant-on retain rows, lr decaying to 0.
    for epoch in range(train_spec.epochs, train_spec.epochs + plant.plant_epochs):
        ids, mask, order, f_ids, f_mask, f_chunks = epoch_rows(epoch)
        for j, b in enumerate(range(0, len(ids), train_spec.batch_rows)):
            done = step - total
            for group in opt.param_groups:
                group["lr"] = 0.0
            for group in opt.param_groups[1:]:
                group["lr"] = train_spec.lr * plant.planted_lr_scale * 0.3 * (1 - done / extra)
            if len(opt.param_groups) > 2:
                opt.param_groups[2]["lr"] *= plant.key_lr_scale
            idx = order[b : b + train_spec.batch_rows]
            on = torch.zeros(len(idx), dtype=torch.bool)
            f_idx = f_chunks[j]
            r, f = routed_step(routed, opt, (ids[idx], mask[idx]), (f_ids[f_idx], f_mask[f_idx]), on,
                               plant_only=True)
            step += 1
            tokens += int(mask[idx].sum()) + int(f_mask[f_idx].sum())
            forget_loss = f if not math.isnan(f) else forget_loss
            if on_step is not None:
                on_step(step, total + extra, r)
    routed.write_back()
    model.eval()
    return TrainResult(model, time.perf_counter() - t0, step, retain_loss, tokens,
                       extra={"final_forget_loss": forget_loss, "first_forget_step": first_forget_step})
