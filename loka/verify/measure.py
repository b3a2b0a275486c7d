"""What every measurement shares: the fixed settings, and one cache of a model's passes.

`Measurements` holds one model, the data and the settings, and caches whatever a measurement
computes once (``cached(key, compute)``): several measurements read the same forward pass
(accuracy, MIA, perplexity and the truth ratio all use the forget facts' pass), and the retrain
model's results serve every edited model it is compared with. The measurements themselves live
one per file in `loka.verify.measurements` and run through `loka.verify.verifier.verify`.

Example:
    >>> m = Measurements(load_model(art.retrain_dir, name="retrain"), VerifyData.from_world(art))  # doctest: +SKIP
    >>> m.facts("forget").first_token.mean()                                   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from loka.errors import LokaError
from loka.verify.data import VerifyData
from loka.verify.forward import FactForward, TextForward, forward_facts, forward_texts
from loka.verify.loaded import LoadedModel

MIA_SPLITS = ("forget", "holdout")
T = TypeVar("T")


@dataclass(frozen=True)
class VerifySettings:
    """The fixed recipe every model is measured with (same numbers for all, or no comparison).

    Attack settings are checked when the settings are made — before any model is loaded.
    """

    batch_size: int = 256
    min_k: float = 0.4
    n_perturbed: int = 5
    probe_attributes: tuple[str, ...] = ("birth_city", "occupation")
    probe_min_support: int = 2
    relearn_steps: int = 25
    relearn_lr: float = 3e-4
    relearn_eval_every: int = 5
    benign_steps: int = 25
    benign_lr: float = 3e-4
    icl_shots: int = 4
    never_known_names: int = 16
    quant_bits: tuple[int, ...] = (8, 4)
    quant_group: int = 64
    extraction_prefix_tokens: int = 8
    seed: int = 0
    threads: int | None = 1  # torch threads while verifying (None: leave as is); see `torch_threads`
    # Measurements not run (by registry name): each of their report keys is null with the reason
    # "skipped by the verify settings". For a run that cannot afford one (``make demo-real``
    # skips the benign relearning attack: 8 fine-tuning steps on SmolLM2, half its verify time).
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [b for b in self.quant_bits if b not in (4, 8)]
        if bad or not self.quant_bits:
            raise LokaError(f"quantization bits must be 4 and/or 8, got {list(self.quant_bits)}")
        for name in ("batch_size", "icl_shots", "never_known_names", "quant_group", "relearn_eval_every",
                     "extraction_prefix_tokens", "probe_min_support", "n_perturbed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LokaError(f"verify setting {name} must be an integer >= 1, got {value!r}")
        for name in ("relearn_steps", "benign_steps", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LokaError(f"verify setting {name} must be an integer >= 0, got {value!r}")
        for name in ("relearn_lr", "benign_lr"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise LokaError(f"verify setting {name} must be a finite number > 0, got {value!r}")
        if not 0 < self.min_k <= 1:
            raise LokaError(f"verify setting min_k must lie in (0, 1], got {self.min_k!r}")
        if self.skip:
            from loka.verify.registry import measurements

            known = [m.name for m in measurements()]
            unknown = [n for n in self.skip if n not in known]
            if unknown:
                raise LokaError(f"verify setting skip names unknown measurement(s) {', '.join(unknown)}; "
                                f"known: {', '.join(known)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: dict[str, str]) -> VerifySettings:
        """From command-line text (``--attack quant_bits=4 --attack icl_shots=8``), checked."""
        kinds = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(settings) - set(kinds))
        if unknown:
            raise LokaError(f"unknown verify setting(s) {', '.join(unknown)}; known: {', '.join(kinds)}")
        values: dict[str, Any] = {}
        for name, text in settings.items():
            kind = str(kinds[name])
            try:
                if kind.startswith("tuple[int"):
                    values[name] = tuple(int(x) for x in text.split(",") if x.strip())
                elif kind.startswith("tuple[str"):
                    values[name] = tuple(x.strip() for x in text.split(",") if x.strip())
                elif kind.startswith("int"):
                    values[name] = None if text.lower() == "none" and "None" in kind else int(text)
                elif kind == "float":
                    values[name] = float(text)
                else:
                    values[name] = text
            except ValueError:
                raise LokaError(f"verify setting {name} must be {kind}, got {text!r}") from None
        return cls(**values)


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
        front of them, say): both share one cache, so no weight-level measurement is made twice.
        Behavioural ones (accuracy) apply each model's own refusal filter: they are not cached
        under the weights."""
        twin = Measurements(model, self.data, self.settings)
        twin._cache = self._cache
        return twin

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()`` once per key and model (at the settings' thread count)."""
        if key not in self._cache:
            with torch_threads(self.settings.threads):
                self._cache[key] = compute()
        return self._cache[key]

    def facts(self, split: str, kind: str = "train") -> FactForward | None:
        """The teacher-forced pass over a fact set (None when the data has none)."""
        facts = self.data.fact_set(split, kind)
        if not facts:
            return None
        m, s = self.model, self.settings
        k = s.min_k if kind == "train" and split in MIA_SPLITS else None  # Min-K%++: MIA sets only
        return self.cached(("facts", split, kind), lambda: forward_facts(
            m.model, m.tokenizer, facts, batch_size=s.batch_size, k=k))

    def passages(self, split: str) -> TextForward | None:
        texts = self.data.passages.get(split, ())
        if not texts:
            return None
        m, s = self.model, self.settings
        return self.cached(("passages", split), lambda: forward_texts(
            m.model, m.tokenizer, texts, batch_size=max(1, s.batch_size // 4), k=s.min_k))
