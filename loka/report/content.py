"""What the report says, once: sections of text, tables and figures that Markdown and HTML render.

Text uses two inline marks only, ``**bold**`` and backquoted code; each renderer translates them.

Example:
    >>> report = build_report(results, figures={"tradeoff": Path("figures/tradeoff.png")})  # doctest: +SKIP
    >>> [s.title for s in report.sections][:3]       # doctest: +SKIP
    ['Summary', 'Caveats', 'Results']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loka.report.tables import Table, cell, metric_table, top_components
from loka.report.verdicts import caveats, general_caveats
from loka.verify.registry import GROUPS, measurements


@dataclass(frozen=True)
class Figure:
    name: str  # key in the figures dict, e.g. "tradeoff"
    file: str  # relative to the report: "figures/tradeoff.png"
    title: str
    caption: str  # how to read this figure


@dataclass(frozen=True)
class Section:
    title: str
    how_to_read: str = ""
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    sections: list[Section]


def _figs(figures: dict[str, Path], *specs: tuple[str, str, str]) -> list[Figure]:
    """``(name, title, caption)`` for each figure that was drawn."""
    return [Figure(n, f"figures/{figures[n].name}", t, c) for n, t, c in specs if n in figures]


def _summary(results: dict[str, Any], ranking: dict[str, Any] | None) -> Section:
    world, methods = results.get("world") or {}, results["methods"]
    if world.get("user_data"):
        u = world["user_data"]
        scope = (f"Your model `{u['model']}`: {u['forget_facts']} forget facts, "
                 f"{u['retain_facts']} retain facts, {u.get('holdout_facts') or 0} holdout facts.")
    else:
        scope = (f"The embedded **{world.get('preset')}** world (seed {world.get('seed')}): "
                 f"{world.get('forget_people')} forget people, {world.get('retain_people')} retain "
                 f"people, {world.get('holdout_people')} holdout people; a {cell(world.get('params'))}-"
                 "parameter GPT-NeoX trained on all of it (base) and retrained without the forget "
                 "people (retrain, the gold standard).")
    ran = [n for n, e in methods.items() if not e.get("error")]
    failed = [n for n, e in methods.items() if e.get("error")]
    paras = [scope, f"Methods verified: {', '.join(ran)}."]
    if failed:
        paras.append(f"Did not run: {', '.join(failed)} (see Caveats).")
    if ranking is not None:
        paras.append(f"Attribution: `{ranking['method']}` ranking of "
                     f"{len(ranking['components'])} components in {ranking['seconds']:.1f} s.")
    m = results.get("machine") or {}
    paras.append(f"Compare took {cell(results.get('compare_seconds'))} s on {m.get('cpus', '?')} CPU "
                 f"cores ({m.get('platform', '?')}).")
    return Section("Summary", paragraphs=paras)


def _caveats(results: dict[str, Any]) -> Section:
    bullets = general_caveats(results)
    bullets += [f"**{name}**: {note}" for name, notes in caveats(results).items() for note in notes]
    return Section("Caveats — read these before the numbers",
                   how_to_read="Each line is something the headline numbers would hide; it is "
                   "computed from the measurements, not written by hand.", bullets=bullets)


def _results(results: dict[str, Any]) -> Section:
    return Section(
        "Results", how_to_read=(
            "Accuracies are first-answer-token accuracy of fact prompts. ↓/↑ say which way is "
            "better; the retrain row is the target every method should match, not beat. "
            "Forget grade (seed): excellent if forget < 0.1 and retain > 0.9, good if < 0.3 and "
            "> 0.8. Privacy grade from |MIA AUC − 0.5|: < 0.05 minimal, < 0.15 moderate. "
            "PrivLeak (MUSE) = (AUC′ − AUC′_retrain)/AUC′_retrain in %, with MUSE's AUC′ = 1 − AUC: "
            "negative means under-unlearned (−100 % = knows it all), positive over-unlearned. "
            "KS p: high = the forget-set truth ratios are indistinguishable from retrain's. "
            "Probe: best-layer linear-probe accuracy on forget people; relearn: recall after the "
            "relearning attack. A dash means not computed; the reason is under the table. "
            "Every measurement, in the order of the tables:"),
        bullets=[f"**{m.name}**: {m.doc}" for m in measurements() if m.doc],
        tables=[metric_table(results, group) for group in GROUPS])


def _attribution(figures: dict[str, Path], ranking: dict[str, Any] | None) -> Section | None:
    figs = _figs(
        figures,
        ("heads", "Attention heads (layer × head)", "Contrast score of each head: red = the "
         "forget facts depend on it more than the retain facts do."),
        ("neurons", "MLP neurons (layer × neuron)", "The same score for every MLP neuron; a few "
         "bright columns = a localized store, a haze = distributed knowledge."),
        ("scatter", "Forget vs retain effect", "One dot per component. Good targets sit high "
         "(large forget effect) and left (small retain effect); ringed: the top 20."))
    if not figs:
        return None
    return Section(
        "Where the knowledge lives (attribution of the base model)", how_to_read=(
            "Attribution patching estimates, for every head and neuron, how much the "
            "log-probability of the right answer drops when it is zero-ablated, on the forget "
            "facts and on the retain facts; the contrast is forget effect minus retain damage. "
            "The table lists the components LOKA's localized methods start from."),
        figures=figs, tables=[top_components(ranking)] if ranking else [])


def _comparison(figures: dict[str, Path]) -> Section | None:
    figs = _figs(
        figures,
        ("tradeoff", "Forget / retain trade-off", "One point per method. The target is the "
         "retrain star: forget accuracy as low as a model that never saw the facts, retain "
         "accuracy as high. Right of it: still knows forget facts; below it: paid for forgetting "
         "with retained knowledge."),
        ("mia_roc", "Membership inference (LOSS attack)", "Can an attacker tell forget facts "
         "(members) from never-seen holdout facts by the model's loss? The diagonal is chance, "
         "where retrain should sit; far above it still leaks membership, far below it "
         "over-unlearned (the forget set looks less familiar than unseen data)."),
        ("probes", "Probe accuracy by layer", "A linear probe trained on retain people reads the "
         "forget people's attributes from the residual stream. A curve at the base model's level "
         "while forget accuracy is ~0 means the answer is hidden, not gone. Dotted: chance."),
        ("relearn", "Relearning attack", "Fine-tune on half of the forget facts for a few steps "
         "and measure recall on the other half. Removed knowledge must be learned from scratch "
         "(like retrain, dashed); hidden knowledge snaps back."),
        ("benign", "Benign relearning", "Fine-tune on retain facts only — nothing about the "
         "forget people. A curve that climbs means the forgetting was a small change in shared "
         "machinery that ordinary training undoes."),
        ("logit_lens", "Logit lens by layer", "Each block's residual stream at the prompt end, read "
         "through the final norm and unembedding: how often the forget answer is already the top "
         "token. A method that only suppresses the output keeps the answer readable in earlier layers."),
        ("depth", "Unlearning depth", "The base model answering with one block's subject states "
         "taken from this model. Where a method removed the fact, the base model loses it as "
         "with the retrain model's states (dashed); where it did not, the base model still answers."))
    if not figs:
        return None
    return Section("How the methods compare", how_to_read=(
        "Four views of the same models. The first is what the output shows; the other three are "
        "attacks on what the output hides: membership, internal representations, relearning."),
        figures=figs)


def build_report(results: dict[str, Any], figures: dict[str, Path],
                 ranking: dict[str, Any] | None = None, command: str | None = None) -> Report:
    """Every section, in reading order; ``ranking`` is the ``ranking.json`` dict, if any."""
    sections = [_summary(results, ranking), _caveats(results), _results(results)]
    attribution = _attribution(figures, ranking)
    comparison = _comparison(figures)
    sections += [s for s in (comparison, attribution) if s is not None]
    if command:
        sections.append(Section("Reproduce", paragraphs=[f"`{command}`",
                                "Machine-readable numbers: `results.json`; the ranking: "
                                "`ranking.json`."]))
    world = results.get("world") or {}
    what = "your data" if world.get("user_data") else f"the {world.get('preset')} world"
    return Report("LOKA unlearning report", f"Attribute → edit → verify, on {what}", sections)
