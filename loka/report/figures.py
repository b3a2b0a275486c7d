"""The report's figures: attribution maps of the base model and the method comparison plots.

Every function saves one PNG (matplotlib, Agg backend) and returns its path, or ``None`` when
the results hold nothing to plot (user data without a holdout set has no ROC curves, say).
Inputs are plain ``results.json`` dicts, so a report can be redrawn from the file alone.

Example:
    >>> tradeoff(json.load(open("results.json")), "figures/tradeoff.png")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from attribution.plots import forget_retain_scatter, head_heatmap, neuron_strip  # noqa: E402
from attribution.ranking import Ranking  # noqa: E402
from loka.io.atomic import write_figure  # noqa: E402

REFERENCES = ("base", "retrain")  # drawn in black/grey, not in a method colour


def _ok(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Methods that ran (an entry with ``error`` has no numbers to draw)."""
    return {n: e for n, e in results["methods"].items() if not e.get("error")}


def _colours(names: list[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    methods = [n for n in names if n not in REFERENCES]
    out: dict[str, Any] = {n: cmap(i % 10) for i, n in enumerate(methods)}
    return out | {"base": "black", "retrain": "dimgrey"}


def _style(name: str, colour: Any) -> dict[str, Any]:
    """References on top, thin (base solid black, retrain dashed) so a method that did nothing
    (drawn thick, underneath) stays visible beside them."""
    if name in REFERENCES:
        return {"color": colour, "lw": 1.2, "ls": "--" if name == "retrain" else "-", "zorder": 4}
    return {"color": colour, "lw": 3.4, "alpha": 0.8, "zorder": 2}


def _outside_legend(ax: Any) -> None:
    """Legend right of the axes: with ten methods it would hide points or curves inside."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)


def _save(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    return write_figure(fig, path, dpi)


def _curve(entry: dict[str, Any], *keys: str) -> Any:
    value: Any = entry.get("curves") or {}
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def attribution_figures(ranking: Ranking, figures: Path) -> dict[str, Path]:
    """Layer x head heatmap, layer x neuron map and forget-vs-retain scatter of ``ranking``."""
    return {
        "heads": _save(head_heatmap(ranking), figures / "attribution_heads.png", 120),
        "neurons": _save(neuron_strip(ranking), figures / "attribution_neurons.png", 120),
        "scatter": _save(forget_retain_scatter(ranking), figures / "attribution_scatter.png", 120),
    }


def tradeoff(results: dict[str, Any], path: str | Path) -> Path | None:
    """Forget accuracy (x, lower is better) vs retain-eval accuracy (y, higher is better)."""
    points = {n: (e["forget_accuracy"], e["retain_accuracy"]) for n, e in _ok(results).items()
              if all(isinstance(e.get(k), (int, float)) for k in ("forget_accuracy", "retain_accuracy"))}
    if not points:
        return None
    colours = _colours(list(points))
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    markers = "oD^vP<>Xh"
    for i, (name, (x, y)) in enumerate(points.items()):
        marker = {"retrain": "*", "base": "s"}.get(name, markers[i % len(markers)])
        label = "retrain (target)" if name == "retrain" else name
        ax.scatter(x, y, s=260 if marker == "*" else 70, marker=marker, color=colours[name],
                   edgecolors="k", linewidths=0.5, zorder=3, alpha=0.9, label=label)
    if "retrain" in points:
        rx, ry = points["retrain"]
        ax.axvline(rx, color="dimgrey", ls=":", lw=1)
        ax.axhline(ry, color="dimgrey", ls=":", lw=1)
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), xlabel="forget accuracy (lower = more forgotten)",
           ylabel="retain-eval accuracy (higher = less damage)",
           title="Forget / retain trade-off (the retrain star is the target)")
    ax.grid(alpha=0.3)
    _outside_legend(ax)
    return _save(fig, path)


def mia_roc(results: dict[str, Any], path: str | Path, attack: str = "loss") -> Path | None:
    """ROC of one membership-inference attack (forget = members, holdout = non-members)."""
    curves = {n: _curve(e, "mia_roc", attack) for n, e in _ok(results).items()}
    curves = {n: c for n, c in curves.items() if isinstance(c, dict) and c.get("fpr")}
    if not curves:
        return None
    colours = _colours(list(curves))
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    ax.plot([0, 1], [0, 1], color="lightgrey", ls="--", lw=1, label="chance (AUC 0.5)")
    for name, c in curves.items():
        ax.plot(c["fpr"], c["tpr"], label=f"{name} (AUC {c['auc']:.2f})", **_style(name, colours[name]))
    ax.set(xlabel="false-positive rate (holdout flagged as member)",
           ylabel="true-positive rate (forget detected)", title=f"Membership inference: {attack} attack",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def probe_by_layer(results: dict[str, Any], path: str | Path) -> Path | None:
    """Probe accuracy on forget people per layer (mean over attributes); holdout = chance level."""
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    colours, drawn, chance = _colours(list(_ok(results))), 0, None
    for name, e in _ok(results).items():
        forget = _curve(e, "probe", "forget")
        if not isinstance(forget, dict) or not forget:
            continue
        mean = np.mean(list(forget.values()), axis=0)
        ax.plot(range(len(mean)), mean, marker="o", label=name, **_style(name, colours[name]))
        holdout = _curve(e, "probe", "holdout")
        if (chance is None or name == "retrain") and isinstance(holdout, dict) and holdout:
            chance = np.mean(list(holdout.values()), axis=0)  # retrain's, where there is one
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    if chance is not None:
        ax.plot(range(len(chance)), chance, color="lightgrey", ls=":", lw=2,
                label="never-seen people (chance level)")
    ax.set(xlabel="layer (residual stream after the block)", ylabel="probe accuracy on forget people",
           title="Is the knowledge still readable inside?", ylim=(-0.02, 1.02))
    ax.set_xticks(range(len(mean)))
    _outside_legend(ax)
    return _save(fig, path)


def attack_curves(results: dict[str, Any], path: str | Path, curve: str, key: str, *, xlabel: str,
                  ylabel: str, title: str) -> Path | None:
    """One line per method of an attack's curve (``curves[curve]["model"][key]`` over its
    ``steps``), and the retrain model under the same attack dashed."""
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    colours, drawn, reference = _colours(list(_ok(results))), 0, None
    for name, e in _ok(results).items():
        c = _curve(e, curve, "model")
        if isinstance(c, dict) and c.get("steps"):
            ax.plot(c["steps"], c[key], marker=".", label=name, **_style(name, colours[name]))
            drawn += 1
        ref = _curve(e, curve, "retrain")
        if reference is None and isinstance(ref, dict) and ref.get("steps"):
            reference = ref
    if not drawn:
        plt.close(fig)
        return None
    if reference is not None and "retrain" not in _ok(results):
        ax.plot(reference["steps"], reference[key], color="dimgrey", ls="--", lw=2, label="retrain (reference)")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(-0.02, 1.02))
    _outside_legend(ax)
    return _save(fig, path)


def layer_curves(results: dict[str, Any], path: str | Path, curve: str, key: str, reference: str, *,
                 ylabel: str, title: str) -> Path | None:
    """One line per method of a per-layer curve (``curves[curve][key]``); the retrain model's
    (``curves[curve][reference]``) dashed when retrain is not itself a row."""
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    colours, drawn, ref = _colours(list(_ok(results))), 0, None
    for name, e in _ok(results).items():
        values = _curve(e, curve, key)
        if isinstance(values, list) and values:
            ax.plot(range(len(values)), values, marker="o", label=name, **_style(name, colours[name]))
            drawn += 1
        theirs = _curve(e, curve, reference)
        if ref is None and isinstance(theirs, list):
            ref = theirs
    if not drawn:
        plt.close(fig)
        return None
    if ref is not None and "retrain" not in _ok(results):
        ax.plot(range(len(ref)), ref, color="dimgrey", ls="--", lw=2, label="retrain (reference)")
    ax.set(xlabel="layer (block)", ylabel=ylabel, title=title, ylim=(-0.02, 1.02))
    ax.set_xticks(range(len(ref or values)))
    _outside_legend(ax)
    return _save(fig, path)


def comparison_figures(results: dict[str, Any], figures: Path) -> dict[str, Path]:
    """Every method-comparison figure that the results can support, by name."""
    made = {
        "tradeoff": tradeoff(results, figures / "tradeoff.png"),
        "mia_roc": mia_roc(results, figures / "mia_roc_loss.png"),
        "probes": probe_by_layer(results, figures / "probe_by_layer.png"),
        "relearn": attack_curves(results, figures / "relearning.png", "relearn", "recall",
                                 xlabel="fine-tuning steps on half of the forget facts",
                                 ylabel="recall on the other half",
                                 title="Relearning attack: does it come back?"),
        "benign": attack_curves(results, figures / "benign_relearning.png", "benign_relearn", "forget",
                                xlabel="fine-tuning steps on retain facts only",
                                ylabel="forget recall", title="Benign relearning: does unrelated data bring it back?"),
        "logit_lens": layer_curves(results, figures / "logit_lens.png", "logit_lens", "top1",
                                   "retrain_top1", ylabel="answer is the top token (forget facts)",
                                   title="Logit lens: where is the answer still readable?"),
        "depth": layer_curves(results, figures / "depth.png", "depth", "model_recall",
                              "retrain_recall", ylabel="base model's recall with this model's states",
                              title="Unlearning depth: the base model reading this model's subject states"),
    }
    return {k: v for k, v in made.items() if v is not None}
