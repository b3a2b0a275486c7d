"""Honest caveats drawn from ``results.json``: what the headline numbers would hide.

The seed's grades look only at output accuracy and one MIA AUC, so a model that merely refuses
(``output_suppression``) can grade "excellent". Every registered measurement can say what its
numbers show that the headline hides — a probe still reading the attribute, relearning or
quantization bringing it back, a damaged model — against its reference; this module gathers
those sentences per method.

Example:
    >>> caveats(results)["output_suppression"]                            # doctest: +SKIP
    ['forget accuracy 0.00 but a probe still reads 0.81 of forget people (chance 0.30): ...']
"""

from __future__ import annotations

from typing import Any

from loka.verify.registry import measurements


def method_caveats(entry: dict[str, Any], retrain: dict[str, Any] | None) -> list[tuple[str, str]]:
    """``(measurement, sentence)`` for each way one method's headline numbers overstate (or
    cannot state) what it forgot, from every registered measurement's own caveats."""
    if entry.get("error"):
        return [("run", f"did not run: {entry['error']}")]
    return [(m.name, note) for m in measurements() if m.caveats is not None
            for note in m.caveats(entry, retrain)]


def caveats(results: dict[str, Any]) -> dict[str, list[str]]:
    """Per method (only those with something to say), the sentences of `method_caveats`."""
    return {name: [note for _, note in notes] for name, notes in tagged_caveats(results).items()}


def tagged_caveats(results: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """`caveats` with the name of the measurement that raised each one."""
    methods = results["methods"]
    retrain = methods.get("retrain") if not (methods.get("retrain") or {}).get("error") else None
    out = {name: method_caveats(entry, retrain) for name, entry in methods.items()
           if name not in ("base", "retrain") or entry.get("error")}
    return {name: notes for name, notes in out.items() if notes}


def general_caveats(results: dict[str, Any]) -> list[str]:
    """Caveats about the whole run: missing references, sample sizes, what the grades ignore."""
    notes: list[str] = []
    methods, world = results["methods"], results.get("world") or {}
    if "retrain" not in methods or methods["retrain"].get("error"):
        notes.append("No retrain model: retrain-relative metrics (PrivLeak, KS forget quality, the "
                     "reference MIA attack, the relearning reference) were not computed.")
    if all(e.get("mia_auc") is None for e in methods.values()):
        notes.append("No holdout set: membership inference was skipped (it needs non-members), so "
                     "there are no MIA AUCs, privacy grades or ROC curves.")
    forget_people = world.get("forget_people")
    if forget_people is not None and forget_people < 50:
        notes.append(f"Only {forget_people} forget people: every accuracy is a mean over few facts "
                     "and moves in steps of several points; read differences under ~0.05 as noise.")
    notes.append("The seed's grades use output accuracy and one MIA AUC only; they cannot tell "
                 "suppression from removal. Read them together with the probe and relearning "
                 "columns and the caveats below.")
    return notes
