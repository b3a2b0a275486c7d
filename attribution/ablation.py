"""What an ablated component's activation is replaced with: zero, a reference mean, or a resample.

An `Ablator` is fitted once on a reference set (the retain set, by default) and then answers,
for a hook and an activation of shape ``[batch pos units ...]``, the replacement tensor
(broadcastable to it). The same replacement is used for forget and retain scoring, so both sets
see the same intervention — the one an ablation plan would later commit.

- ``zero``: 0.
- ``mean``: the mean activation over every real (non-pad) token of the reference set.
- ``resample``: each (item, position) gets the activation of a random real reference token,
  drawn with a seed of the hook and the *item's own tokens* (its key, `_Batch.item_keys`), so an
  item sees the same replacements wherever it sits — alone, in a length-sorted minibatch or
  replicated (the batched and the one-by-one patching must see identical replacements).

Example:
    >>> ablator = Ablator.fit(bridge, retain, ["blocks.0.mlp.hook_post"], "mean")  # doctest: +SKIP
    >>> ablator.replacement("blocks.0.mlp.hook_post", act)  # [d_mlp], broadcasts over batch, pos  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from attribution._common import input_device
from attribution.data import FactBatch, PassageBatch

AblationKind = Literal["zero", "mean", "resample"]
ABLATIONS: tuple[AblationKind, ...] = ("zero", "mean", "resample")


@dataclass(frozen=True, eq=False)
class Ablator:
    """Replacement activations per hook (see module docstring)."""

    kind: AblationKind
    stats: dict[str, Tensor] = field(default_factory=dict)  # mean [units ...] or pool [tokens units ...]
    seed: int = 0
    forward_passes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ABLATIONS:
            raise ValueError(f"ablation must be one of {ABLATIONS}, got {self.kind!r}")

    @classmethod
    def fit(cls, bridge: Any, reference: FactBatch | PassageBatch | None, hooks: list[str],
            kind: AblationKind, *, batch_size: int = 64, seed: int = 0,
            max_pool: int = 4096) -> Ablator:
        """Collect what ``kind`` needs from ``reference`` at ``hooks`` (nothing for ``zero``)."""
        if kind not in ABLATIONS:
            raise ValueError(f"ablation must be one of {ABLATIONS}, got {kind!r}")
        if kind == "zero":
            return cls(kind, seed=seed)
        if reference is None or len(reference) == 0:
            raise ValueError(f"{kind} ablation needs a non-empty reference set")
        device = input_device(bridge)
        sums: dict[str, Tensor] = {}
        pools: dict[str, list[Tensor]] = {h: [] for h in hooks}
        passes, count = 0, 0
        with torch.inference_mode():
            for chunk in reference.chunks(batch_size):
                chunk = chunk.to(device)
                _, cache = bridge.run_with_cache(chunk.input_ids, attention_mask=chunk.attention_mask,
                                                 names_filter=lambda n: n in hooks)
                passes += 1
                real = chunk.attention_mask.bool()
                count += int(real.sum())
                for h in hooks:
                    tokens = cache[h][real].float()  # [real tokens, units ...]
                    sums[h] = sums.get(h, 0) + tokens.sum(0)
                    if kind == "resample":
                        pools[h].append(tokens)
        if kind == "mean":
            stats = {h: s / count for h, s in sums.items()}
        else:
            gen = torch.Generator().manual_seed(seed)
            keep = torch.randperm(count, generator=gen)[:max_pool]  # bound memory on big sets
            stats = {h: torch.cat(pools[h])[keep.to(device)] for h in hooks}
        return cls(kind, stats, seed, passes)

    def replacement(self, hook: str, act: Float[Tensor, "batch pos units *rest"],
                    keys: Int[Tensor, " batch"] | None = None) -> Tensor:
        """Replacement for ``act`` at ``hook``, broadcastable to ``act``'s shape; ``keys``
        (one per row, `_Batch.item_keys`) are required for ``resample``."""
        if self.kind == "zero":
            return torch.zeros((), dtype=act.dtype, device=act.device)
        if hook not in self.stats:
            raise KeyError(f"the ablator was not fitted at hook {hook!r}")
        stat = self.stats[hook].to(act.device, act.dtype)
        if self.kind == "mean":
            return stat
        if keys is None or len(keys) != act.shape[0]:
            raise ValueError("resample ablation needs one key per row (the batch's item_keys())")
        # Seeded by hook and item, drawn along positions: the same draws for the same item in any
        # batch, also when it is cut to fewer positions (a cut keeps a prefix).
        base = (self.seed + sum(map(ord, hook)) * 7919) * 1_000_003
        pos = act.shape[1]
        idx = torch.stack([torch.randint(len(stat), (pos,), generator=torch.Generator().manual_seed(base + k))
                           for k in keys.tolist()]).to(act.device)
        return stat[idx]

    def tiled(self, hook: str, act: Float[Tensor, "rows pos units *rest"], items: int,
              keys: Int[Tensor, " items"] | None = None) -> Tensor:
        """Replacement for a batch of ``items`` replicated ``rows // items`` times, copy-major.

        Every replica gets the same draws, so replicas differ only in what the caller varies.
        """
        rep = self.replacement(hook, act[:items], keys)
        if rep.ndim == act.ndim:
            rep = rep.repeat(act.shape[0] // items, *([1] * (act.ndim - 1)))
        return rep
