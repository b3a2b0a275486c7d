"""Patched forward passes that start where the patch is, on a clean prefix computed once.

Ablating a component at layer ``L`` leaves every block below ``L`` with its clean input, so
exhaustive patching need not run those blocks again for each component. `CleanPass` runs a batch
once and records what each block was called with: the residual and the architecture's own
keyword arguments (attention mask, rotary embeddings, positions; not the KV cache, which would
grow with every resumed call), the residual entering the final norm, and the clean activations
at some hooks. `resume_logits` then calls the bridge's own block modules from ``L`` on, so every
hook inside them fires, and reads logits only where a metric does:

- the last block runs its attention at every position (later positions attend to earlier ones)
  but its MLP only at the read positions (`last_block_at`);
- the final norm and unembedding run at the read positions only;
- an MLP neuron's patch does not even need its own block: the block's output is affine in
  ``mlp.hook_post`` through ``W_out``, so ablating neuron ``n`` adds ``(new - old)[..., n] *
  W_out[n]`` to the clean output (`neuron_delta`).

Each shortcut is checked on the model at hand against its clean pass (`CleanPass.resumes`,
`CleanPass.last_block_holds`, `neuron_shortcut_holds`); callers take the plain path where a
check fails.

Example:
    >>> clean, logits = CleanPass.capture(bridge, ids, mask, ["blocks.1.mlp.hook_post"])  # doctest: +SKIP
    >>> resume_logits(bridge, clean, 2, clean.output_of(1), where)  # == logits[where]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformers.cache_utils import Cache


def _replicate(value: Any, rows: int, n: int) -> Any:
    """``value`` with every per-row tensor (leading axis ``rows``, >= 2 axes) stacked ``n`` times."""
    if isinstance(value, Tensor):
        if value.ndim >= 2 and value.shape[0] == rows and n > 1:
            return value.repeat(n, *([1] * (value.ndim - 1)))
        return value
    if isinstance(value, tuple | list):
        return type(value)(_replicate(v, rows, n) for v in value)
    if isinstance(value, dict):
        return {k: _replicate(v, rows, n) for k, v in value.items()}
    return value


def _close(got: Tensor, want: Tensor, scale: float = 1.0) -> bool:
    """Equal up to reordered float sums: 1e-4 in float32, a few ulps in half precision."""
    tol = max(1e-4, 16 * torch.finfo(want.dtype).eps) * scale
    return torch.allclose(got, want, atol=tol, rtol=tol)


def _first(out: Any) -> Tensor:
    """A block's or attention's hidden-state output (HF returns a tensor or a tuple)."""
    return out[0] if isinstance(out, tuple) else out


@contextmanager
def _recording(bridge: Any, hooks: list[str]) -> Iterator[dict[str, Any]]:
    """Record block inputs, the final norm's input and activations at ``hooks`` during a pass."""
    seen: dict[str, Any] = {}

    def block_input(i: int):
        def fn(module: Any, args: tuple, kwargs: dict) -> None:
            seen[f"block{i}"] = (args, kwargs)
        return fn

    def final_input(module: Any, args: tuple, kwargs: dict) -> None:
        seen["final"] = args[0] if args else kwargs["hidden_states"]

    def activation(name: str):
        def fn(act: Tensor, hook: Any) -> None:
            seen[name] = act
        return fn

    handles = [b.register_forward_pre_hook(block_input(i), with_kwargs=True)
               for i, b in enumerate(bridge.blocks)]
    handles.append(bridge.ln_final.register_forward_pre_hook(final_input, with_kwargs=True))
    try:
        with bridge.hooks(fwd_hooks=[(h, activation(h)) for h in hooks]):
            yield seen
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True, eq=False)
class CleanPass:
    """One unpatched pass over a batch, kept so patched passes can start at any block."""

    inputs: list[Float[Tensor, "batch pos d_model"]]  # residual entering each block
    extras: list[tuple[tuple, dict[str, Any]]]  # each block's other arguments, no KV cache
    final: Float[Tensor, "batch pos d_model"]  # residual entering the final norm
    acts: dict[str, Tensor]  # clean activations at the hooks asked for

    @classmethod
    def capture(cls, bridge: Any, input_ids: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"],
                hooks: list[str]) -> tuple[CleanPass, Float[Tensor, "batch pos vocab"]]:
        """Run a batch once (no gradient); what `resume_logits` needs to resume it, and the logits."""
        with torch.inference_mode(), _recording(bridge, hooks) as seen:
            logits = bridge(input_ids, attention_mask=attention_mask)
        inputs, extras = [], []
        for i in range(len(bridge.blocks)):
            args, kwargs = seen[f"block{i}"]
            inputs.append(args[0] if args else kwargs["hidden_states"])
            kwargs = {k: None if isinstance(v, Cache) else v for k, v in kwargs.items() if k != "hidden_states"}
            if "use_cache" in kwargs:
                kwargs["use_cache"] = False
            extras.append((tuple(None if isinstance(a, Cache) else a for a in args[1:]), kwargs))
        return cls(inputs, extras, seen["final"], {h: seen[h] for h in hooks}), logits

    @property
    def rows(self) -> int:
        return int(self.final.shape[0])

    @property
    def last(self) -> int:
        return len(self.inputs) - 1

    def output_of(self, layer: int) -> Float[Tensor, "batch pos d_model"]:
        """The residual leaving block ``layer`` (the next block's input, or the final norm's)."""
        return self.inputs[layer + 1] if layer < self.last else self.final

    def resumes(self, bridge: Any, where: Bool[Tensor, "batch pos"], logits: Tensor) -> bool:
        """Whether re-running the last block on two stacked copies gives the final residual, and
        the head at ``where`` gives this pass's ``logits`` there."""
        twice = run_blocks(bridge, self, self.last, self.last + 1, self.inputs[self.last].repeat(2, 1, 1), 2)
        return _close(twice, self.final.repeat(2, 1, 1)) and _close(head(bridge, self.final[where]), logits[where])

    def last_block_holds(self, bridge: Any, where: Bool[Tensor, "batch pos"]) -> bool:
        """Whether `last_block_at` (attention, then the MLP at ``where`` only) gives the last
        block's output there: it assumes the usual pre-norm block, parallel or sequential."""
        try:
            at = last_block_at(bridge, self, self.inputs[self.last], where, 1)
        except (TypeError, ValueError, RuntimeError, AttributeError):  # a block of another shape
            return False
        return _close(at, self.final[where])


def run_blocks(bridge: Any, clean: CleanPass, start: int, stop: int, hidden: Float[Tensor, "rows pos d_model"],
               replicas: int = 1) -> Float[Tensor, "rows pos d_model"]:
    """Blocks ``start..stop-1`` on ``hidden`` (``replicas`` stacked copies of the clean batch,
    copy-major) with the clean pass's arguments."""
    for layer in range(start, stop):
        args, kwargs = _replicate(clean.extras[layer], clean.rows, replicas)
        hidden = _first(bridge.blocks[layer](hidden, *args, **kwargs))
    return hidden


def last_block_at(bridge: Any, clean: CleanPass, hidden: Float[Tensor, "rows pos d_model"],
                  where: Bool[Tensor, "rows pos"], replicas: int = 1) -> Float[Tensor, "n d_model"]:
    """The last block's output at the ``where`` positions: attention everywhere, MLP at ``where``."""
    block = bridge.blocks[clean.last]
    args, kwargs = _replicate(clean.extras[clean.last], clean.rows, replicas)
    attn = _first(block.attn(block.ln1(hidden), *args, **kwargs))
    if bridge.cfg.parallel_attn_mlp:  # x + attn(ln1 x) + mlp(ln2 x)
        mlp_in, resid = hidden[where], hidden[where] + attn[where]
    else:  # m = x + attn(ln1 x); m + mlp(ln2 m)
        resid = (hidden + attn)[where]
        mlp_in = resid
    return resid + block.mlp(block.ln2(mlp_in[:, None]))[:, 0]


def head(bridge: Any, final: Float[Tensor, "n d_model"]) -> Float[Tensor, "n vocab"]:
    """Final norm and unembedding of residuals taken at single positions."""
    return bridge.unembed(bridge.ln_final(final[:, None]))[:, 0]


def resume_logits(bridge: Any, clean: CleanPass, start: int, hidden: Float[Tensor, "rows pos d_model"],
                  where: Bool[Tensor, "rows pos"], replicas: int = 1, *, short_last: bool = True
                  ) -> Float[Tensor, "n vocab"]:
    """Logits at ``where`` of the pass that enters block ``start`` with ``hidden`` (``start`` past
    the last block: ``hidden`` is the final residual). ``short_last``: `last_block_at`."""
    if start > clean.last:
        return head(bridge, hidden[where])
    if not short_last:
        return head(bridge, run_blocks(bridge, clean, start, clean.last + 1, hidden, replicas)[where])
    hidden = run_blocks(bridge, clean, start, clean.last, hidden, replicas)
    return head(bridge, last_block_at(bridge, clean, hidden, where, replicas))


def neuron_delta(post: Float[Tensor, "batch pos d_mlp"], new: Float[Tensor, "batch pos d_mlp"],
                 w_out: Float[Tensor, "d_mlp d_model"], units: Int[Tensor, " n"]
                 ) -> Float[Tensor, "n batch pos d_model"]:
    """Change of a block's output when neuron ``units[r]`` alone goes from ``post`` to ``new``."""
    return torch.einsum("bpn,nd->nbpd", (new - post)[..., units], w_out[units])


def neuron_shortcut_holds(bridge: Any, clean: CleanPass, layer: int, hook: str) -> bool:
    """Whether block ``layer``'s output moves by ``-post @ W_out`` when all its neurons are zeroed
    (true for plain and gated MLPs; checked because an adapter may fold or transpose weights)."""
    w_out = getattr(bridge.blocks[layer].mlp, "W_out", None)
    if not isinstance(w_out, Tensor) or w_out.shape[0] != clean.acts[hook].shape[-1]:
        return False
    with torch.inference_mode(), bridge.hooks(fwd_hooks=[(hook, lambda act, hook: torch.zeros_like(act))]):
        zeroed = run_blocks(bridge, clean, layer, layer + 1, clean.inputs[layer])
    expected = clean.output_of(layer) - clean.acts[hook] @ w_out.to(zeroed.dtype)
    return _close(zeroed, expected, scale=1 + float(expected.abs().max()))
