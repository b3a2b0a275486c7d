"""Figures of a `Ranking`: layer x head heatmap, layer x neuron strip, forget-vs-retain scatter.

Every function saves a PNG (matplotlib, Agg backend: no display needed) and returns its path.
Diverging colour maps are centred on 0 for signed effects, so red = the set depends on the
component and blue = ablating it helps.

Example:
    >>> head_heatmap(ranking, "figures/heads.png", which="forget")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from attribution.ranking import Ranking  # noqa: E402

Which = Literal["forget", "retain", "contrast"]


def _norm(values: np.ndarray) -> TwoSlopeNorm | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.min() >= 0 or finite.max() <= 0:
        return None  # one-signed (e.g. activation statistics): a plain sequential scale
    return TwoSlopeNorm(0.0, finite.min(), finite.max())


def _save(fig: plt.Figure, path: str | Path | None) -> Any:
    """``fig`` itself when ``path`` is None (the caller saves it), else saved to ``path``."""
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _title(ranking: Ranking, which: Which) -> str:
    ablation = f", {ranking.ablation} ablation" if ranking.ablation else ""
    return f"{which} score — {ranking.method}{ablation}"


def head_heatmap(ranking: Ranking, path: str | Path | None = None, which: Which = "contrast") -> Any:
    """Layer x head heatmap of one score."""
    grid = ranking.grid("head", which).numpy()
    norm = _norm(grid)
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * grid.shape[1], 1.0 + 0.45 * grid.shape[0]))
    image = ax.imshow(grid, cmap="RdBu_r" if norm else "viridis", norm=norm, aspect="auto")
    ax.set(xlabel="head", ylabel="layer", title=_title(ranking, which),
           xticks=range(grid.shape[1]), yticks=range(grid.shape[0]))
    fig.colorbar(image, ax=ax, label=which)
    return _save(fig, path)


def neuron_strip(ranking: Ranking, path: str | Path | None = None, which: Which = "contrast",
                 top_k: int | None = None) -> Any:
    """Layer x neuron image: every neuron (``top_k=None``) or each layer's ``top_k`` by score."""
    grid = ranking.grid("neuron", which).numpy()
    xlabel = "neuron index"
    if top_k is not None:
        grid = -np.sort(-np.nan_to_num(grid, nan=-np.inf), axis=1)[:, :top_k]
        xlabel = f"rank within layer (top {top_k})"
    norm = _norm(grid)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.45 * grid.shape[0]))
    image = ax.imshow(grid, cmap="RdBu_r" if norm else "viridis", norm=norm, aspect="auto",
                      interpolation="nearest")
    ax.set(xlabel=xlabel, ylabel="layer", title=_title(ranking, which), yticks=range(grid.shape[0]))
    fig.colorbar(image, ax=ax, label=which)
    return _save(fig, path)


def forget_retain_scatter(ranking: Ranking, path: str | Path | None = None, highlight: int = 20) -> Any:
    """Forget vs retain score per component, by kind; the top ``highlight`` by contrast ringed."""
    fig, ax = plt.subplots(figsize=(6, 5))
    forget, retain = ranking.forget_scores.numpy(), ranking.retain_scores.numpy()
    kinds = np.array([c.kind for c in ranking.components])
    for kind, colour in (("neuron", "tab:blue"), ("head", "tab:orange")):
        keep = kinds == kind
        if keep.any():
            ax.scatter(retain[keep], forget[keep], s=8, alpha=0.5, c=colour, label=f"{kind}s")
    top = set(ranking.top(highlight))
    ring = np.array([c in top for c in ranking.components])
    ax.scatter(retain[ring], forget[ring], s=40, facecolors="none", edgecolors="k",
               label=f"top {highlight} by contrast")
    ax.axhline(0, c="grey", lw=0.5)
    ax.axvline(0, c="grey", lw=0.5)
    ax.set(xlabel=f"retain score ({ranking.retain_metric})", ylabel=f"forget score ({ranking.forget_metric})",
           title=f"{ranking.method}: forget vs retain")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)
