"""Localization against an answer key: the planted world (`loka.world.spec.PlantSpec`).

`plant_check` asks whether the plant took — zero-ablating the planted neurons brings forget
accuracy to the retrain model's level and keeps retain-eval accuracy, while random sets of the
same size (same layers, same count per layer) do not — and how much leaks: forget knowledge that
survives the planted set's ablation. `score_ranking` grades an attribution ranking of the MLP
neurons against the planted set: precision and recall at k = |planted|, average precision over
the whole ranking, and the same numbers for random rankings (the floor). `forget_set_scores`
joins rankings made on each part of a forget set (its facts, its passages) into one.

Example:
    >>> art = load_world("planted")                                     # doctest: +SKIP
    >>> check = plant_check(art)                                        # doctest: +SKIP
    >>> check["took"], check["random_does_not"], check["leak"]["forget_accuracy"]  # doctest: +SKIP
    >>> score_ranking(ranking.scores("contrast"), ranking.components, planted_components(art.spec))  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

from attribution.components import Component
from attribution.ranking import Ranking
from loka.errors import LokaError
from loka.evaluate import FirstTokenEval
from loka.world.spec import WorldSpec

# What the plant check measures: (column, person split, template family).
_SETS = (("forget_accuracy", "forget", "train"), ("retain_accuracy", "retain_eval", "train"),
         ("heldout_template_forget_accuracy", "forget", "qa"),
         ("novel_template_forget_accuracy", "forget", "novel"), ("holdout_accuracy", "holdout", "train"))


def planted_components(spec: WorldSpec) -> list[Component]:
    """The planted MLP neurons of a planted world's spec (its answer key)."""
    if spec.plant is None:
        raise LokaError(f"world {spec.preset!r} has no planted set; use a planted preset (e.g. 'planted')")
    return [Component(layer, "neuron", n) for layer, idx in spec.plant.by_layer().items() for n in idx]


def random_like(planted: Sequence[Component], d_mlp: int, rng: random.Random) -> list[Component]:
    """As many neurons as ``planted`` in each of its layers, drawn from the unplanted ones."""
    out: list[Component] = []
    for layer in sorted({c.layer for c in planted}):
        taken = {c.index for c in planted if c.layer == layer}
        count = sum(c.layer == layer for c in planted)
        out += [Component(layer, "neuron", n) for n in rng.sample([i for i in range(d_mlp) if i not in taken], count)]
    return out


def _accuracies(model: Any, checks: dict[str, FirstTokenEval]) -> dict[str, float]:
    return {name: round(check(model), 4) for name, check in checks.items()}


def plant_check(art: Any, draws: int = 5, seed: int = 0, margin: float = 0.05,
                retain_ratio: float = 0.95) -> dict[str, Any]:
    """Zero-ablate the planted set, each of its layers alone, and ``draws`` random sets of the
    same shape, on a planted world's base model (`loka.world.build.WorldArtifacts`).

    ``took``: planted forget accuracy <= retrain's + ``margin`` and retain-eval >=
    ``retain_ratio`` x base's. ``random_does_not``: no random set reaches that forget accuracy.
    ``leak``: what the planted set's ablation leaves above the retrain model (accuracy on the
    training, held-out and novel templates): knowledge the routing let land elsewhere.
    """
    import torch

    from loka.engine import AblationPlan, commit
    from loka.io.models import load_bridge, load_hf

    planted = planted_components(art.spec)
    world, tokenizer = art.world, art.tokenizer()
    checks = {name: FirstTokenEval(tokenizer, world.facts(split, kind)) for name, split, kind in _SETS}
    bridge = load_bridge(art.base_dir)
    hf = bridge.original_model
    retrain_model, _ = load_hf(art.retrain_dir)

    def ablated(components: list[Component]) -> dict[str, float]:
        journal = commit(bridge, AblationPlan.zero(components))
        try:
            with torch.inference_mode():
                return _accuracies(hf, checks)
        finally:
            journal.undo()

    with torch.inference_mode():
        base, retrain = _accuracies(hf, checks), _accuracies(retrain_model, checks)
    gone = ablated(planted)
    per_layer = {layer: ablated([c for c in planted if c.layer == layer]) for layer in art.spec.plant.layers}
    rng = random.Random(seed)
    randoms = [ablated(random_like(planted, art.spec.model.d_mlp, rng)) for _ in range(draws)]
    reached = retrain["forget_accuracy"] + margin
    took = gone["forget_accuracy"] <= reached and gone["retain_accuracy"] >= retain_ratio * base["retain_accuracy"]
    return {
        "planted": len(planted), "layers": list(art.spec.plant.layers), "d_mlp": art.spec.model.d_mlp,
        "base": base, "retrain": retrain, "planted_ablated": gone,
        "planted_ablated_per_layer": per_layer,
        "random_ablated": randoms,
        "random_forget_accuracy_min": min(r["forget_accuracy"] for r in randoms),
        "random_retain_accuracy_mean": round(float(np.mean([r["retain_accuracy"] for r in randoms])), 4),
        "retain_vs_base": round(gone["retain_accuracy"] / max(base["retain_accuracy"], 1e-9), 4),
        "took": bool(took),
        "random_does_not": all(r["forget_accuracy"] > reached for r in randoms),
        "leak": {name: round(gone[name] - retrain[name], 4) for name, _, _ in _SETS if name != "retain_accuracy"},
        "margin": margin, "retain_ratio": retain_ratio, "draws": draws,
    }


def score_ranking(scores: Sequence[float] | np.ndarray | Any, components: Sequence[Component],
                  planted: Sequence[Component], floor_draws: int = 200, seed: int = 0) -> dict[str, Any]:
    """Grade one ranking of MLP neurons (higher score = more forget-specific) against ``planted``.

    Only neurons are graded (heads in ``components`` are dropped). Returns precision and recall
    at k = |planted|, average precision (scikit-learn's, over the full ranking; ties broken by
    component order), and the random-ranking floor of each (mean over ``floor_draws`` random
    orders of the same neurons).
    """
    keep = [i for i, c in enumerate(components) if c.kind == "neuron"]
    if not keep:
        raise ValueError("the ranking has no neurons to grade")
    values = np.asarray([float(scores[i]) for i in keep], dtype=np.float64)
    values = np.nan_to_num(values, nan=-np.inf, posinf=np.finfo(np.float64).max, neginf=-np.finfo(np.float64).max)
    answer = set(planted)
    truth = np.array([components[i] in answer for i in keep])
    k = int(truth.sum())
    if k == 0:
        raise ValueError("none of the planted neurons is among the ranked components")
    order = np.argsort(-values, kind="stable")
    hits = int(truth[order[:k]].sum())
    rng = np.random.default_rng(seed)
    floor_p, floor_ap = [], []
    for _ in range(floor_draws):
        perm = rng.permutation(len(truth))
        floor_p.append(truth[perm[:k]].mean())
        floor_ap.append(average_precision_score(truth, -np.argsort(perm).astype(np.float64)))
    # Strictly decreasing scores in ranked order so that scikit-learn sees no ties.
    ranked = np.empty(len(values))
    ranked[order] = -np.arange(len(values), dtype=np.float64)
    return {
        "k": k, "n_neurons": len(truth),
        "precision_at_k": hits / k, "recall_at_k": hits / k,
        "average_precision": float(average_precision_score(truth, ranked)),
        "random_precision_at_k": float(np.mean(floor_p)),
        "random_average_precision": float(np.mean(floor_ap)),
        "top_k": [str(components[keep[i]]) for i in order[:k]],
    }


def forget_set_scores(parts: Sequence[Ranking]) -> np.ndarray:
    """One contrast score per component from rankings of the same components on each part of a
    forget set (`attribution.Ranking`s: e.g. its facts, scored by answer log-prob, and its
    passages, by mean token log-likelihood): each part's contrast divided by its standard
    deviation over the components, then summed — every part weighs the same whatever its
    metric's scale, and a component that only one part depends on still ranks high.

    The task's forget set is facts *and* passages (`loka.methods.task.Task`); ranking on the
    facts alone misses what the forget data taught beyond its answers.
    """
    if not parts:
        raise ValueError("no rankings to join")
    components = tuple(parts[0].components)
    total = np.zeros(len(components))
    for part in parts:
        if tuple(part.components) != components:
            raise ValueError("the rankings score different components")
        values = np.nan_to_num(np.asarray(part.scores("contrast"), dtype=np.float64), nan=0.0)
        scale = float(values.std())
        if scale > 0:
            total += values / scale
    return total


def pr_curve(scores: Sequence[float] | np.ndarray | Any, components: Sequence[Component],
             planted: Sequence[Component]) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) over every cut of the neuron ranking (`score_ranking`'s order)."""
    keep = [i for i, c in enumerate(components) if c.kind == "neuron"]
    values = np.nan_to_num(np.asarray([float(scores[i]) for i in keep], dtype=np.float64), nan=-np.inf)
    order = np.argsort(-values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = -np.arange(len(values), dtype=np.float64)
    answer = set(planted)
    precision, recall, _ = precision_recall_curve([components[i] in answer for i in keep], ranked)
    return precision, recall
