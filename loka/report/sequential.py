"""The sequential-requests figure and table, from `SequentialResult.to_dict()` output.

One panel per method: forget accuracy of each request batch over the steps (solid once the
batch was requested, dotted before) and retain-eval accuracy (black). The Markdown table has a
row per (method, step): forget accuracy on each batch (``*`` marks batches not yet requested)
and retain-eval accuracy.

Example:
    >>> figure(res.to_dict(), "out/sequential.png")          # doctest: +SKIP
    >>> print(markdown_table(res.to_dict()))                 # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def figure(result: dict[str, Any], path: str | Path) -> Path:
    """Draw the figure (matplotlib Agg) to ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(result["methods"].items())
    n_batches = len(result["batches"])
    fig, axes = plt.subplots(1, max(len(methods), 1), figsize=(3.6 * max(len(methods), 1), 3.2),
                             sharey=True, squeeze=False, layout="constrained")
    colours = plt.get_cmap("viridis")
    for ax, (name, run) in zip(axes[0], methods, strict=False):
        steps = [s["step"] for s in run["steps"]]
        for j in range(n_batches):
            acc = [s["forget_accuracy"][j] for s in run["steps"]]
            c = colours(j / max(n_batches - 1, 1))
            ax.plot(steps[: j + 2], acc[: j + 2], ":", color=c, alpha=0.6)
            ax.plot(steps[j + 1:], acc[j + 1:], "o-", color=c, ms=3, label=f"batch {j + 1}")
        ax.plot(steps, [s["retain_eval_accuracy"] for s in run["steps"]], "s-", color="black",
                ms=3, label="retain-eval")
        verdict = run["decay"]["reason"]
        ax.set_title(f"{name}\n{verdict}", fontsize=8)
        ax.set_xlabel("requests applied")
        ax.set_xticks(steps)
        ax.set_ylim(-0.03, 1.03)
    axes[0][0].set_ylabel("first-token accuracy")
    axes[0][-1].legend(fontsize=6, loc="center right")
    fig.suptitle(f"Sequential erasure requests ({result['preset']} world, {n_batches} batches)",
                 fontsize=9)
    from loka.io.atomic import write_figure

    return write_figure(fig, path)


def markdown_table(result: dict[str, Any]) -> str:
    """Forget accuracy per batch and retain-eval per step, every method (``*``: not requested)."""
    n = len(result["batches"])
    head = "| method | step | " + " | ".join(f"batch {j + 1}" for j in range(n)) + " | retain-eval |"
    lines = [head, "|" + "---|" * (n + 3)]
    for name, run in result["methods"].items():
        for s in run["steps"]:
            cells = [f"{a:.2f}" + ("*" if j >= s["step"] else "")
                     for j, a in enumerate(s["forget_accuracy"])]
            lines.append(f"| {name} | {s['step']} | " + " | ".join(cells)
                         + f" | {s['retain_eval_accuracy']:.2f} |")
    verdicts = [f"- **{name}**: {run['decay']['reason']} (max rebound "
                f"{run['decay']['max_rebound']:+.2f}, retain-eval drop {run['decay']['retain_drop']:+.2f})"
                for name, run in result["methods"].items()]
    return "\n".join(lines + ["", *verdicts]) + "\n"
