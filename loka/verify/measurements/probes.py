"""Linear probes: can an attribute still be read from the residual stream at the subject?

For every person, each distinct text that ends at the person's name ("Mira Coltan", "The
birthplace of Mira Coltan", ...) is run through the model; the residual stream after each block
(``blocks.{L}.hook_resid_post``) at the name's last token is one sample. A causal model's
activation there depends only on that prefix, so running the prefix is the same as running the
whole prompt. Per layer, a scikit-learn logistic regression is trained on retain people to
predict an attribute's value and tested on forget people; holdout people (never trained) give
the chance-level reference. Only values held by at least ``min_support`` retain people are
classes; people with other values are left out of the test. Knowledge a probe still reads is
suppressed, not removed.

Example:
    >>> curve = probe_curves(model, tok, data, attributes=("birth_city",))   # doctest: +SKIP
    >>> curve.accuracy, curve.best_layer, curve.forget["birth_city"]         # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from attribution.components import resid_post_hook
from attribution.data import tokenize_passages
from loka.memory import release_freed_memory
from loka.verify.data import VerifyData
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register

TRAIN_SPLITS, TEST_SPLIT, CHANCE_SPLIT = ("retain_train", "retain_eval"), "forget", "holdout"


@dataclass(frozen=True)
class ProbeSamples:
    """One row per (person, prefix ending at the person's name); ``acts``: ``[layer row d_model]``."""

    subjects: tuple[str, ...]
    acts: Float[np.ndarray, "layer row d_model"]


def subject_prefixes(data: VerifyData, subject: str) -> list[str]:
    """The distinct prompt prefixes that end with ``subject`` (training templates)."""
    out: dict[str, None] = {}
    for split in (*TRAIN_SPLITS, TEST_SPLIT, CHANCE_SPLIT):
        for f in data.fact_set(split):
            if f.subject == subject and subject in f.prompt:
                out.setdefault(f.prompt[: f.prompt.index(subject) + len(subject)], None)
    return list(out)


def bridge_of(model: Any, tokenizer: Any) -> Any:
    """A TransformerBridge around a *copy* of ``model`` (booting wraps the HF modules in place)."""
    from transformer_lens.model_bridge import TransformerBridge

    clone = copy.deepcopy(model)
    name = getattr(model.config, "_name_or_path", "") or model.config.model_type
    bridge = TransformerBridge.boot_transformers(name, hf_model=clone, tokenizer=tokenizer,
                                                 device=str(next(model.parameters()).device))
    bridge.eval()
    return bridge


@torch.inference_mode()
def collect(bridge: Any, tokenizer: Any, data: VerifyData, subjects: Sequence[str],
            batch_size: int = 256) -> ProbeSamples:
    """Residual streams at each subject's last token, every layer."""
    rows = [(s, p) for s in subjects for p in subject_prefixes(data, s)]
    batch = tokenize_passages(tokenizer, [p for _, p in rows], scored=False)  # a one-token name: no prefix
    n_layers = int(bridge.cfg.n_layers)
    hooks = [resid_post_hook(layer) for layer in range(n_layers)]
    parts = []
    for chunk in batch.chunks(batch_size):
        _, cache = bridge.run_with_cache(chunk.input_ids, attention_mask=chunk.attention_mask,
                                         names_filter=lambda name: name in hooks)
        last = chunk.attention_mask.sum(-1) - 1
        idx = torch.arange(len(chunk))
        parts.append(torch.stack([cache[h][idx, last] for h in hooks]).float().cpu().numpy())
    return ProbeSamples(tuple(s for s, _ in rows), np.concatenate(parts, axis=1))


@dataclass(frozen=True)
class ProbeCurves:
    """Per attribute, probe accuracy per layer on forget and on holdout people."""

    forget: dict[str, list[float]]
    holdout: dict[str, list[float]]
    classes: dict[str, int]
    n_test: dict[str, int]

    @property
    def mean_forget(self) -> Float[np.ndarray, " layer"]:
        return np.mean(list(self.forget.values()), axis=0)

    @property
    def best_layer(self) -> int:
        """The layer where the probes read the forget set best (the attacker's choice)."""
        return int(np.argmax(self.mean_forget))

    @property
    def accuracy(self) -> float:
        return float(self.mean_forget[self.best_layer])

    @property
    def holdout_accuracy(self) -> float:
        """Chance reference: the best layer's accuracy on people the model never saw."""
        return float(np.max(np.mean(list(self.holdout.values()), axis=0)))


def _labels(data: VerifyData, attribute: str) -> dict[str, str]:
    return {f.subject: f.answer for k in data.facts for f in data.fact_set(*k)
            if f.attribute == attribute and f.subject}


def _split(subjects: Sequence[str], labels: dict[str, str], train: set[str], tests: list[set[str]],
           min_support: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], int] | None:
    """``(labels per row, train rows, test rows per test set, classes)``, or None when the
    attribute has fewer than two classes or a test set no row: decided from the subjects alone,
    before any activation is collected."""
    people = [s for s in train if s in labels]
    counts: dict[str, int] = {}
    for s in people:
        counts[labels[s]] = counts.get(labels[s], 0) + 1
    classes = {v for v, c in counts.items() if c >= min_support}
    y = np.array([labels.get(s, "") for s in subjects])
    keep = np.isin(y, sorted(classes))
    subj = np.array(subjects)
    tr = keep & np.isin(subj, sorted(train))
    te = [keep & np.isin(subj, sorted(t)) for t in tests]
    if len(classes) < 2 or not all(m.any() for m in te):
        return None
    return y, tr, te, len(classes)


def _fit_eval(samples: ProbeSamples, labels: dict[str, str], train: set[str], tests: list[set[str]],
              min_support: int, seed: int) -> tuple[list[list[float]], int, int] | None:
    split = _split(samples.subjects, labels, train, tests, min_support)
    if split is None:
        return None
    y, tr, te, n_classes = split
    curves: list[list[float]] = [[] for _ in tests]
    # One BLAS thread: these fits are small, and threads contending with torch's (or another
    # process's) made them 10-40x slower on two cores.
    with threadpool_limits(1):
        for acts in samples.acts:
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
            probe.fit(acts[tr], y[tr])
            for curve, m in zip(curves, te, strict=True):
                curve.append(float(probe.score(acts[m], y[m])))
    return curves, n_classes, int(te[0].sum())


def probe_curves(model: Any, tokenizer: Any, data: VerifyData, *,
                 attributes: Sequence[str] = ("birth_city", "occupation"), min_support: int = 2,
                 seed: int = 0) -> ProbeCurves | Missing:
    """Fit and test the per-layer probes (see the module doc). Whether any attribute can be
    probed is decided from the data first: without one, no model copy is made and no
    activation collected (on SmolLM2 that copy and its bridge cost seconds and memory)."""
    train = set(data.subjects(*TRAIN_SPLITS))
    forget, holdout = set(data.subjects(TEST_SPLIT)), set(data.subjects(CHANCE_SPLIT))
    if not (train and forget and holdout):
        return Missing("probes need subjects in retain, forget and holdout facts")
    subjects = sorted(train | forget | holdout)
    rows = [s for s in subjects for _ in subject_prefixes(data, s)]
    probed = [a for a in attributes
              if _split(rows, _labels(data, a), train, [forget, holdout], min_support) is not None]
    if not probed:
        return Missing(f"no attribute of {list(attributes)} has {min_support}+ retain people per "
                       "value for at least two values, with forget and holdout people to test")
    bridge = bridge_of(model, tokenizer)
    samples = collect(bridge, tokenizer, data, subjects)
    del bridge  # a copy of the model: gone before the fits (and the next measurement)
    release_freed_memory()
    if not np.isfinite(samples.acts).all():
        return Missing("non-finite activations; the model's outputs may have diverged")
    out: dict[str, Any] = {"forget": {}, "holdout": {}, "classes": {}, "n_test": {}}
    for attribute in probed:
        fitted = _fit_eval(samples, _labels(data, attribute), train, [forget, holdout],
                           min_support, seed)
        if fitted is not None:
            (f_curve, h_curve), n_classes, n_test = fitted
            out["forget"][attribute], out["holdout"][attribute] = f_curve, h_curve
            out["classes"][attribute], out["n_test"][attribute] = n_classes, n_test
    return ProbeCurves(**out)


def probes_of(me: Any) -> ProbeCurves | Missing:
    s = me.settings
    return me.cached("probes", lambda: probe_curves(
        me.model.model, me.model.tokenizer, me.data, attributes=s.probe_attributes,
        min_support=s.probe_min_support, seed=s.seed))


def run(ctx: Any) -> dict[str, Any]:
    probes = probes_of(ctx.me)
    if isinstance(probes, Missing):
        return dict.fromkeys(("probe_accuracy", "probe_holdout_accuracy", "probe_best_layer"), probes)
    curves = {"forget": probes.forget, "holdout": probes.holdout, "classes": probes.classes,
              "n_test": probes.n_test, "layer": "blocks.{L}.hook_resid_post at the subject's last token"}
    return {"probe_accuracy": probes.accuracy, "probe_holdout_accuracy": probes.holdout_accuracy,
            "probe_best_layer": probes.best_layer, "curves": {"probe": curves}}


def caveats(entry: dict[str, Any], retrain: dict[str, Any] | None) -> list[str]:
    forget, probe = entry.get("forget_accuracy"), entry.get("probe_accuracy")
    chance = max(entry.get("probe_holdout_accuracy") or 0.0, (retrain or {}).get("probe_accuracy") or 0.0)
    if isinstance(forget, float) and forget < 0.3 and isinstance(probe, float) and probe - chance > 0.2:
        return [f"forget accuracy {forget:.2f}, but a linear probe still reads {probe:.2f} of the "
                f"forget people's attributes inside the model (reference {chance:.2f}): the "
                "knowledge is suppressed at the output, not removed"]
    return []


register(Measurement(
    "probes", keys=("probe_accuracy", "probe_holdout_accuracy", "probe_best_layer"), run=run,
    needs=("subjects", "holdout"), caveats=caveats,
    columns=(Column("probe_accuracy", "probe", "depth", "lower", wide=True, summary=True),),
    doc="Best layer's linear-probe accuracy on the forget people's attributes (probes trained "
        "on retain people, at the subject's last token); holdout people give chance.",
))
