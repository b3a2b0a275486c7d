"""`Measurements`: every measurement of one model on one data set, each computed once and cached.

Several metrics read the same forward pass (accuracy, MIA, perplexity and the truth ratio all
use the forget facts' pass), and the retrain model's results serve every edited model it is
compared with, so the cache lives in one object per model.

Example:
    >>> m = Measurements(load_model(art.retrain_dir, name="retrain"), VerifyData.from_world(art))
    >>> m.accuracy()["forget"]["train"]["first_token"], m.mia().auc["loss"]   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loka.verify.data import VerifyData
from loka.verify.extraction_eval import extraction
from loka.verify.forward import (
    FactForward,
    TextForward,
    concat_logprobs,
    forward_facts,
    forward_texts,
)
from loka.verify.loaded import LoadedModel
from loka.verify.metrics import Missing, perplexity
from loka.verify.mia_eval import MiaResult, attack_scores
from loka.verify.probes import ProbeCurves, probe_curves
from loka.verify.relearn import RelearnResult, relearn_attack
from loka.verify.truth_eval import truth_ratios

ACCURACY_SPLITS = ("forget", "retain_eval", "holdout")
MIA_SPLITS = ("forget", "holdout")


@dataclass(frozen=True)
class VerifySettings:
    """The fixed recipe every model is measured with (same numbers for all, or no comparison)."""

    batch_size: int = 256
    min_k: float = 0.4
    n_perturbed: int = 5
    probe_attributes: tuple[str, ...] = ("birth_city", "occupation")
    probe_min_support: int = 2
    relearn_steps: int = 25
    relearn_lr: float = 3e-4
    relearn_eval_every: int = 5
    extraction_prefix_tokens: int = 8
    seed: int = 0
    threads: int | None = 1  # torch threads while verifying (None: leave as is); see `torch_threads`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (and ``n`` BLAS threads for numpy/scikit-learn), then restore.
    The verifier's matrices are small: on two shared cores one thread measured 2-4x faster than
    two (no spinning, no contention). Pinning BLAS too makes the probes' numbers independent of
    how many threads the process had (`compare`'s workers run at one thread)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    if n is None:
        yield
        return
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


class Measurements:
    """Lazy, cached measurements of ``model`` on ``data`` (see the module doc)."""

    def __init__(self, model: LoadedModel, data: VerifyData, settings: VerifySettings | None = None):
        self.model, self.data = model, data
        self.settings = settings or VerifySettings()
        self._cache: dict[Any, Any] = {}

    def with_weights_of(self, model: LoadedModel) -> Measurements:
        """Measurements of ``model``, whose weights are exactly this model's (a refusal filter in
        front of them, say): both share one cache, so no weight-level measurement (forward
        passes, MIA, truth ratios, probes, relearning, extraction) is made twice. Accuracy is
        not cached: it applies each model's own refusal filter."""
        twin = Measurements(model, self.data, self.settings)
        twin._cache = self._cache
        return twin

    def _cached(self, key: Any, compute: Any) -> Any:
        if key not in self._cache:
            with torch_threads(self.settings.threads):
                self._cache[key] = compute()
        return self._cache[key]

    def facts(self, split: str, kind: str = "train") -> FactForward | None:
        facts = self.data.fact_set(split, kind)
        if not facts:
            return None
        m, s = self.model, self.settings
        k = s.min_k if kind == "train" and split in MIA_SPLITS else None  # Min-K%++: MIA sets only
        return self._cached(("facts", split, kind), lambda: forward_facts(
            m.model, m.tokenizer, facts, batch_size=s.batch_size, k=k))

    def passages(self, split: str) -> TextForward | None:
        texts = self.data.passages.get(split, ())
        if not texts:
            return None
        m, s = self.model, self.settings
        return self._cached(("passages", split), lambda: forward_texts(
            m.model, m.tokenizer, texts, batch_size=max(1, s.batch_size // 4), k=s.min_k))

    def accuracy(self) -> dict[str, dict[str, dict[str, float | int]]]:
        """``{split: {kind: {first_token, greedy, n}}}``; a refusal filter answers its subjects."""
        out: dict[str, dict[str, dict[str, float | int]]] = {}
        for (split, kind) in self.data.facts:
            if split not in ACCURACY_SPLITS:
                continue
            ff, facts = self.facts(split, kind), self.data.fact_set(split, kind)
            if ff is None:
                continue
            first, greedy = ff.first_token.copy(), ff.greedy.copy()
            refusal = self.model.refusal
            if refusal is not None:
                refused = refusal.refused([f.prompt for f in facts])
                r_first, r_greedy = refusal.answer_correct(self.model.tokenizer, [f.answer for f in facts])
                first[refused], greedy[refused] = r_first[refused], r_greedy[refused]
            out.setdefault(split, {})[kind] = {"first_token": float(first.mean()),
                                               "greedy": float(greedy.mean()), "n": len(facts)}
        return out

    def _sources(self) -> dict[str, tuple[TextForward, TextForward]]:
        sources = {}
        for source, member, nonmember in (("facts", self.facts("forget"), self.facts("holdout")),
                                          ("passages", self.passages("forget"), self.passages("holdout"))):
            if member is not None and nonmember is not None:
                sources[source] = (member, nonmember)
        return sources

    def mia(self, reference: Measurements | None = None) -> MiaResult | Missing:
        """MIA on forget vs holdout texts; ``reference`` (the retrain model) adds its NLLs."""
        k = self.settings.min_k
        own = self._cached(("mia", None), lambda: MiaResult.of(attack_scores(self._sources(), k=k))
                           if self._sources() else Missing("MIA needs forget and holdout texts"))
        if reference is None or isinstance(own, Missing):
            return own
        ref = reference.mia()
        ref_nll = None if isinstance(ref, Missing) else ref.nll
        return self._cached(("mia", id(reference)), lambda: MiaResult.of(
            attack_scores(self._sources(), k=k, reference_nll=ref_nll)))

    def truth_ratios(self) -> np.ndarray | Missing:
        ff = self.facts("forget")
        if ff is None:
            return Missing("no forget facts")
        m, s = self.model, self.settings
        return self._cached("truth", lambda: truth_ratios(
            m.model, m.tokenizer, self.data.fact_set("forget"), ff.answer_logprob,
            self.data.attribute_values(), n_perturbed=s.n_perturbed, seed=s.seed))

    def relearn(self) -> RelearnResult | Missing:
        s = self.settings
        return self._cached("relearn", lambda: relearn_attack(
            self.model.model, self.model.tokenizer, self.data.fact_set("forget"),
            steps=s.relearn_steps, lr=s.relearn_lr, eval_every=s.relearn_eval_every, seed=s.seed))

    def probes(self) -> ProbeCurves | Missing:
        s = self.settings
        return self._cached("probes", lambda: probe_curves(
            self.model.model, self.model.tokenizer, self.data, attributes=s.probe_attributes,
            min_support=s.probe_min_support, seed=s.seed))

    def extraction(self) -> dict[str, float | int] | Missing:
        return self._cached("extraction", lambda: extraction(
            self.model.model, self.model.tokenizer, self.data.passages.get("forget", ()),
            prefix_tokens=self.settings.extraction_prefix_tokens))

    def perplexity(self) -> float | Missing:
        """Perplexity on held-out retain text: retain-eval facts as sentences + retain passages."""
        parts = [fw.text for fw in (self.facts("retain_eval"), self.passages("retain")) if fw is not None]
        if not parts:
            return Missing("no retain-eval facts or retain passages")
        return perplexity(concat_logprobs(parts))
