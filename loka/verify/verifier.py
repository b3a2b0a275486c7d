"""`verify`: every registered measurement of one model, against the retrain gold standard.

Each measurement (`loka.verify.registry`, one file each in `loka.verify.measurements`) runs on a
`Context`: the model's cached `Measurements`, the retrain reference's and the base model's when
given, the data, the settings, the caller's claims (seconds, changed parameters, divergence) and
the values measured so far. A measurement whose needs are not met (no retrain model, no holdout
set...) reports each of its keys as ``Missing`` with the reason, never a made-up number.

Example:
    >>> art = load_world("default")  # doctest: +SKIP
    >>> report = verify(art.base_dir, art, retrain=art.retrain_dir, name="base")  # doctest: +SKIP
    >>> report.forget_accuracy, report.mia_auc["loss"], report.probe_accuracy   # doctest: +SKIP
    >>> json.dumps(report.to_dict(), allow_nan=False)                          # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loka.errors import LokaError
from loka.verify.data import VerifyData
from loka.verify.loaded import LoadedModel, check_tokenizer, check_vocab_fits, load_model
from loka.verify.measure import Measurements, VerifySettings
from loka.verify.missing import Missing, jsonable
from loka.verify.registry import NEEDS, measurements
from loka.verify.registry import report_keys as _keys

ModelLike = str | Path | tuple[Any, Any] | LoadedModel | Measurements


@dataclass
class Context:
    """What a measurement reads: the model's measurements and everything it is compared with."""

    me: Measurements
    ref: Measurements | None
    base: Measurements | None
    data: VerifyData
    settings: VerifySettings
    claims: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def loaded(self) -> LoadedModel:
        return self.me.model

    def missing_need(self, needs: tuple[str, ...]) -> str | None:
        """The reason of the first unmet need, or None."""
        have = {
            "retrain": self.ref is not None, "base": self.base is not None,
            "holdout": self.data.has("holdout"), "passages": bool(self.data.passages.get("forget")),
            "forget_facts": self.data.has("forget"),
            "subjects": any(f.subject for f in self.data.fact_set("forget")),
        }
        return next((NEEDS[n] for n in needs if not have[n]), None)


@dataclass(frozen=True)
class VerifyReport:
    """What the verifier found: ``values`` by report key (attribute access works too:
    ``report.forget_accuracy``); ``to_dict()`` is plain JSON (``Missing`` -> null + ``<key>_reason``)."""

    model: str
    data: str
    values: dict[str, Any]
    verify_seconds: float
    curves: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"a verify report has no {name!r}; keys: {', '.join(values)}")

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"model": self.model, "data": self.data, **self.values,
                         "verify_seconds": self.verify_seconds, "curves": self.curves,
                         "warnings": self.warnings})


def report_keys() -> tuple[str, ...]:
    """Every measured key of a report's JSON (a method that did not run gets each, null)."""
    return _keys()


def _measurements(model: ModelLike, data: VerifyData, settings: VerifySettings, name: str | None,
                  refusal_filter: dict[str, Any] | None, device: str, placement: Any = None,
                  prefix: str | None = None) -> Measurements:
    from attribution.data import prefix_of, with_prefix

    if isinstance(model, Measurements):
        if prefix is not None and prefix_of(model.model.tokenizer) != prefix:
            raise LokaError(f"{model.model.name} was measured after {prefix_of(model.model.tokenizer)!r}, not "
                            f"{prefix!r}: measure it again with that prefix")
        return model
    loaded = load_model(model, name=name, refusal_filter=refusal_filter, device=device, placement=placement)
    if prefix is not None:  # a copy: a LoadedModel passed in keeps its own tokenizer
        loaded = replace(loaded, tokenizer=with_prefix(loaded.tokenizer, prefix))
    check_tokenizer(loaded.tokenizer, data.tokenizer, loaded.name)
    check_vocab_fits(loaded)
    return Measurements(loaded, data, settings)


def as_data(world_or_data: Any) -> VerifyData:
    return world_or_data if isinstance(world_or_data, VerifyData) else VerifyData.from_world(world_or_data)


def run_measurements(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every registered measurement in order: ``(values, curves)``."""
    curves: dict[str, Any] = {}
    for m in measurements():
        reason = "skipped by the verify settings (skip)" if m.name in ctx.settings.skip else ctx.missing_need(m.needs)
        if reason is not None:
            ctx.values.update({k: Missing(f"{m.name}: {reason}") for k in m.keys})
            continue
        out = dict(m.run(ctx))
        curves.update(out.pop("curves", {}))
        absent = [k for k in m.keys if k not in out]
        if absent or set(out) - set(m.keys):
            raise RuntimeError(f"measurement {m.name!r} returned keys {sorted(out)}, declared {m.keys}")
        ctx.values.update(out)
    return ctx.values, curves


def verify(model: ModelLike, world_or_data: Any, *, base: ModelLike | None = None,
           retrain: ModelLike | None = None, name: str | None = None,
           refusal_filter: dict[str, Any] | None = None, seconds: float | None = None,
           params_changed: int | None = None, diverged: bool | None = None,
           settings: VerifySettings | None = None, device: str = "cpu",
           placement: Any = None, prefix: str | None = None) -> VerifyReport:
    """Measure ``model`` (a checkpoint dir, ``(hf_model, tokenizer)`` or cached `Measurements`).

    ``retrain`` (the gold standard) enables PrivLeak, forget quality, the reference attack and
    every attack's retrain reference; without it they are ``Missing`` with the reason. ``base``
    (the model before unlearning) enables the depth patching and counts changed parameters when
    neither the caller nor a manifest says. A model with non-finite weights is an error.
    ``placement`` (`loka.io.placement.Placement`) dispatches every model across devices.
    ``prefix`` (`attribution.data.PREFIXES`) reads the data and every model after that prefix,
    whatever their tokenizers record (None: as recorded; they must agree).
    """
    t0 = time.perf_counter()
    data, settings = as_data(world_or_data), settings or VerifySettings()
    if prefix is not None:
        from attribution.data import PREFIXES, with_prefix

        if prefix not in PREFIXES:
            raise LokaError(f"unknown prefix {prefix!r}: use one of {', '.join(PREFIXES)}")
        if data.tokenizer is not None:
            data = replace(data, tokenizer=with_prefix(data.tokenizer, prefix))
    me = _measurements(model, data, settings, name, refusal_filter, device, placement, prefix)
    ref = None if retrain is None else _measurements(retrain, data, settings, "retrain", None, device, placement, prefix)
    base_m = None if base is None else _measurements(base, data, settings, "base", None, device, placement, prefix)
    claims = {"seconds": seconds, "params_changed": params_changed, "diverged": diverged}
    ctx = Context(me, ref, base_m, data, settings, claims)
    values, curves = run_measurements(ctx)
    return VerifyReport(model=me.model.name, data=data.name, values=values,
                        verify_seconds=time.perf_counter() - t0, curves=curves,
                        warnings=list(me.model.warnings))
