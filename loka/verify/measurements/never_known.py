"""The floor: each forget query asked about people the model never learned.

Forgotten should look like never known — not less (calibrated forgetting: the forget set's
likelihood falls to that of unseen people, not below it, or the gap itself gives the person
away). Where no retrain model exists (a real pretrained model) this is the reference there is:
each forget fact is asked again with its subject replaced by each of up to ``never_known_names``
holdout people (never trained), the answer unchanged, and the model's first-token margin of that
answer (its log-prob minus the best other token's; > 0: answered) is compared with the fact's
own. The subject is replaced where the prompt spells it ("Barty Crouch works at the Ministry of");
a prompt that ends with the subject's first name (the answer completes the name: "... is called
Barty" -> "Crouch") ends with the never-known person's first name instead; a prompt that names
neither (a reverse query asking for the subject) is left out.

Report: ``never_known_accuracy``, the share of (trained forget prompt, never-known person) pairs
answered — the level the forget accuracy falls to once the people are unknown; ``never_known_gap``,
the mean over the forget facts of every template of (own margin - the mean margin of the same
query about the never-known people): > 0, the forget people are still answered more firmly than
strangers (knowledge left); < 0, more weakly (forgotten past the floor, an overshoot an attacker
can see); a model that never learned them, retrain, is near 0. ``never_known`` holds the names,
each template kind's numbers and the forget facts still answered, with how many never-known
people the same query is answered for (a query answered for strangers too is a guess, not a memory).
The margins are the weights' own: a refusal filter in front of a model changes its accuracy, not
this (what it hides is still there).

Example (margins 2.0 and -1.0 beside never-known means -3.0 and -1.5):
    >>> gap([2.0, -1.0], [[-3.0, -3.0], [-1.0, -2.0]])
    2.75
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from loka.io.data import FactRecord
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register

STILL_ANSWERED = 20  # forget facts listed in the report, the firmest first


def asked_about(fact: FactRecord, name: str) -> FactRecord | None:
    """``fact`` about ``name`` instead of its subject: the subject replaced where the prompt spells
    it, else the prompt's last word replaced by the name's first when it is the subject's first
    (the answer completes the name); None when the prompt names neither.

    >>> asked_about(FactRecord("Barty Crouch works at the Ministry of", "Magic", "Barty Crouch"), "Paul Brenner").prompt
    'Paul Brenner works at the Ministry of'
    >>> asked_about(FactRecord("The official is called Barty", "Crouch", "Barty Crouch"), "Paul Brenner").prompt
    'The official is called Paul'
    """
    subject = fact.subject.strip()
    if not subject:
        return None
    if subject in fact.prompt:
        return dataclasses.replace(fact, prompt=fact.prompt.replace(subject, name, 1), subject=name)
    first, name_first = subject.split()[0], name.split()[0]
    head, _, last = fact.prompt.rpartition(" ")
    if last == first and head:
        return dataclasses.replace(fact, prompt=f"{head} {name_first}", subject=name)
    return None


@torch.inference_mode()
def margins(model: Any, tok: Any, facts: Sequence[FactRecord], batch_size: int = 256) -> list[float]:
    """Each fact's first-token margin of its answer (`loka.evaluate.first_token_margins` on
    `loka.evaluate.prompt_end_logits`); none for no facts."""
    from attribution.data import tokenize_facts
    from loka.evaluate import first_token_margins, prompt_end_logits

    if not facts:
        return []
    batch = tokenize_facts(tok, [f.prompt for f in facts], [f.answer for f in facts])
    return first_token_margins(prompt_end_logits(model, batch, batch_size), batch.answer_ids[:, 0]).tolist()


def _mean(values: Sequence[float], digits: int) -> float | None:
    return round(sum(values) / len(values), digits) if values else None


def gap(own: Sequence[float], theirs: Sequence[Sequence[float]]) -> float | None:
    """Mean over facts of (own margin - the mean of the same query's never-known margins); facts
    with no never-known pair are left out; None when none has one."""
    diffs = [m - sum(t) / len(t) for m, t in zip(own, theirs, strict=True) if t]
    return sum(diffs) / len(diffs) if diffs else None


def floor(model: Any, tok: Any, forget: Sequence[FactRecord], names: Sequence[str],
          batch_size: int = 256) -> dict[str, Any]:
    """Per kind: the own facts' answered share and mean margin, and the never-known pairs' (answered,
    of, mean margin); per fact: its own margin, and the never-known names that answer it."""
    own = margins(model, tok, forget, batch_size)
    asked = [[a for n in names if (a := asked_about(f, n)) is not None] for f in forget]
    flat = iter(margins(model, tok, [a for row in asked for a in row], batch_size))
    unknown = [[(a.subject, next(flat)) for a in row] for row in asked]  # per fact: (name, margin)
    facts = [{"subject": f.subject, "kind": f.kind, "prompt": f.prompt, "answer": f.answer, "margin": round(m, 3),
              "never_known_answered": [n for n, x in pairs if x > 0], "never_known_of": len(pairs),
              "never_known_mean_margin": _mean([x for _, x in pairs], 3)}
             for f, m, pairs in zip(forget, own, unknown, strict=True)]
    kinds: dict[str, Any] = {}
    for kind in dict.fromkeys(f.kind for f in forget):
        mine = [i for i, f in enumerate(forget) if f.kind == kind]
        theirs = [x for i in mine for _, x in unknown[i]]
        answered = sum(own[i] > 0 for i in mine)
        kinds[kind] = {"facts": len(mine), "answered": answered, "accuracy": round(answered / len(mine), 4),
                       "mean_margin": _mean([own[i] for i in mine], 3), "never_known_pairs": len(theirs),
                       "never_known_answered": sum(x > 0 for x in theirs),
                       "never_known_accuracy": _mean([float(x > 0) for x in theirs], 4),
                       "never_known_mean_margin": _mean(theirs, 3),
                       "gap": gap([own[i] for i in mine], [[x for _, x in unknown[i]] for i in mine])}
    return {"kinds": kinds, "facts": facts,
            "gap": gap(own, [[x for _, x in pairs] for pairs in unknown])}


def pick_names(subjects: Sequence[str], n: int) -> list[str]:
    """Up to ``n`` of ``subjects``, evenly spread over their order (all of them when fewer).

    >>> pick_names(["a", "b", "c", "d", "e", "f"], 3)
    ['a', 'c', 'e']
    """
    if len(subjects) <= n:
        return list(subjects)
    return [subjects[i * len(subjects) // n] for i in range(n)]


def forget_facts(data: Any) -> list[FactRecord]:
    """Every forget fact of every template family (each record carries its family)."""
    return [f for (split, _), facts in data.facts.items() if split == "forget" for f in facts]


def floor_of(me: Any) -> dict[str, Any] | Missing:
    data = me.data
    forget = forget_facts(data)
    names = pick_names(data.subjects("holdout"), me.settings.never_known_names)
    if not names:
        return Missing("the holdout facts name no people to ask the forget queries about")
    m = me.model
    return me.cached("never_known", lambda: {"names": names, **floor(m.model, m.tokenizer, forget, names,
                                                                      me.settings.batch_size)})


def run(ctx: Any) -> dict[str, Any]:
    out = floor_of(ctx.me)
    if isinstance(out, Missing):
        return {"never_known_accuracy": out, "never_known_gap": out, "never_known": out}
    trained = out["kinds"].get("train", {})
    answered = sorted((f for f in out["facts"] if f["margin"] > 0), key=lambda f: -f["margin"])
    keep = ("subject", "kind", "prompt", "answer", "margin", "never_known_mean_margin")
    summary = {"names": out["names"], "kinds": out["kinds"], "still_answered": len(answered),
               "answered": [{k: f[k] for k in keep} | {"never_known_answered": len(f["never_known_answered"]),
                                                        "never_known_of": f["never_known_of"]}
                            for f in answered[:STILL_ANSWERED]]}
    acc = trained.get("never_known_accuracy")
    return {"never_known_accuracy": acc if acc is not None else
            Missing("no trained forget prompt names its subject to replace"),
            "never_known_gap": out["gap"] if out["gap"] is not None else
            Missing("no forget prompt names its subject to replace"),
            "never_known": summary}


def _answered(entry: dict[str, Any], kind: str, own: Any) -> Any:
    """A family's forget accuracy as the model answers (a refusal filter included: the accuracy
    and queries measurements'), else the weights' own (this measurement's)."""
    unseen = entry.get("unseen_templates")
    said = entry.get("forget_accuracy") if kind == "train" else (
        (unseen.get(kind) or {}).get("forget") if isinstance(unseen, dict) else None)
    return said if isinstance(said, float | int) else own


def caveats(entry: dict[str, Any], retrain: dict[str, Any] | None) -> list[str]:
    """Per template family: answers no longer given yet > 1 nat above the floor in the weights
    (weakened or hidden, not gone), or > 1 nat below it (an overshoot)."""
    summary = entry.get("never_known")
    kinds = summary.get("kinds", {}) if isinstance(summary, dict) else {}
    out = []
    for kind, k in kinds.items():
        got, acc = k.get("gap"), _answered(entry, kind, k.get("accuracy"))
        if not isinstance(got, float | int) or not isinstance(acc, float | int):
            continue
        what = "the trained forget facts" if kind == "train" else f"the forget facts' '{kind}' queries"
        if acc <= 0.3 and got > 1.0:
            out.append(f"{what} are no longer answered (accuracy {acc:.2f}), yet their answers stay {got:.1f} nats "
                       f"firmer than the same queries about never-known people: weakened or hidden, not gone")
        elif got < -1.0:
            out.append(f"{what} are forgotten past the floor: their answers are {-got:.1f} nats weaker than the same "
                       f"queries about never-known people — a gap that itself marks the forget set (calibrated "
                       f"forgetting stops at the floor)")
    return out


register(Measurement(
    "never_known", keys=("never_known_accuracy", "never_known_gap", "never_known"), run=run,
    needs=("forget_facts", "holdout", "subjects"), caveats=caveats,
    columns=(Column("never_known_accuracy", "never-known floor", "outcome"),
             Column("never_known_gap", "margin over never-known", "depth", "zero")),
    doc="Each forget query asked about never-known (holdout) people: the level forgetting should "
        "fall to, and how far the model's own margins sit above (knowledge left) or below (overshoot) it.",
))
