"""The forget queries asked about names the model never learned: the floor a forget query falls to.

    python -m bench.never_known [--json] [--threads 2] [--edit '{"seed": 1}'] [--model DIR]

On a real model there is no retrain to compare with. What a model that never learned a person
answers about them is the next best reference (calibrated forgetting: the forget set should fall
to the level of people never seen, not below). Each forget fact of the shipped SmolLM2 request
(`bench.real.request`) is asked again with its subject replaced by each never-known name — the
holdout file's invented characters and `deep_stranger.STRANGERS` — where the prompt spells the
subject (the reverse queries: "<name> works at the Ministry of") or ends with its first name (the
trained and question forms: "... is called <first name>", the answer unchanged): the model's
first-token margin of the fact's own answer (its log-prob minus the best other token's; > 0 is
answered). Per fact kind: the share of (fact, name) pairs answered, and each fact's own row
beside its never-known one.

With ``--edit JSON`` the base model is measured, then `loka-deep` with those settings runs on it
and the edited model is measured too: does the edit take never-known names' answers down with the
person's (forgetting below the floor)? ``--model DIR`` measures a saved checkpoint instead of the
shipped base.

Example:
    >>> asked_about(FactRecord("Barty Crouch works at the Ministry of", "Magic", "Barty Crouch"), "Paul Brenner").prompt
    'Paul Brenner works at the Ministry of'
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import torch

from bench._common import Timer, finish, log, machine, parser, print_table, setup
from loka.io.data import FactRecord


def asked_about(fact: FactRecord, name: str) -> FactRecord | None:
    """``fact`` about ``name`` instead of its subject: the subject replaced where the prompt spells
    it, else the prompt's last word replaced by the name's first when it is the subject's first
    (the answer completes the name); None when the prompt names neither."""
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


@torch.no_grad()
def margins(model: Any, tok: Any, facts: Sequence[FactRecord]) -> list[float]:
    """Each fact's first-token margin of its answer (`loka.evaluate.first_token_margins`)."""
    from attribution.data import tokenize_facts
    from loka.evaluate import first_token_margins, logits_at, prompt_ends

    out: list[float] = []
    for start in range(0, len(facts), 64):
        chunk = facts[start:start + 64]
        batch = tokenize_facts(tok, [f.prompt for f in chunk], [f.answer for f in chunk])
        out += first_token_margins(logits_at(model, batch, prompt_ends(batch)), batch.answer_ids[:, 0]).tolist()
    return out


def floor(model: Any, tok: Any, forget: Sequence[FactRecord], names: Sequence[str]) -> dict[str, Any]:
    """Per kind: the own facts' answered share and mean margin, and the never-known pairs' (answered,
    of, mean margin); per fact: its own margin, and the never-known names that answer it."""
    own = margins(model, tok, forget)
    pairs = [(i, asked) for i, f in enumerate(forget) for n in names if (asked := asked_about(f, n)) is not None]
    unknown = margins(model, tok, [a for _, a in pairs]) if pairs else []
    kinds: dict[str, Any] = {}
    facts = []
    for i, fact in enumerate(forget):
        mine = [(a.subject, m) for (j, a), m in zip(pairs, unknown, strict=True) if j == i]
        facts.append({"subject": fact.subject, "kind": fact.kind, "prompt": fact.prompt, "answer": fact.answer,
                      "margin": round(own[i], 3), "never_known_answered": [n for n, m in mine if m > 0],
                      "never_known_of": len(mine),
                      "never_known_mean_margin": round(sum(m for _, m in mine) / len(mine), 3) if mine else None})
        k = kinds.setdefault(fact.kind, {"facts": 0, "answered": 0, "never_known_pairs": 0,
                                         "never_known_answered": 0, "_own": 0.0, "_sum": 0.0})
        k["facts"] += 1
        k["answered"] += own[i] > 0
        k["_own"] += own[i]
        k["never_known_pairs"] += len(mine)
        k["never_known_answered"] += sum(m > 0 for _, m in mine)
        k["_sum"] += sum(m for _, m in mine)
    for k in kinds.values():
        pairs_n = k["never_known_pairs"]
        k["accuracy"] = round(k["answered"] / k["facts"], 4)
        k["mean_margin"] = round(k.pop("_own") / k["facts"], 3)
        k["never_known_accuracy"] = round(k["never_known_answered"] / pairs_n, 4) if pairs_n else None
        k["never_known_mean_margin"] = round(k.pop("_sum") / pairs_n, 3) if pairs_n else None
    return {"kinds": kinds, "facts": facts}


def never_known_names(data: Any) -> list[str]:
    """The holdout's invented characters and the strangers the method's targets use."""
    from loka.methods.localized.deep_stranger import STRANGERS

    invented = sorted({f.subject for (split, _), facts in data.facts.items() if split == "holdout"
                       for f in facts if f.subject})
    return invented + [n for n in STRANGERS if n not in invented]


def _render(out: dict[str, Any]) -> None:
    for model in out["models"]:
        print_table(f"{model['model']}: forget queries, own vs never-known names",
                    ["kind", "facts", "answered", "mean margin", "never-known pairs", "never-known answered",
                     "never-known mean margin"],
                    [[kind, k["facts"], k["accuracy"], k["mean_margin"], k["never_known_pairs"],
                      k["never_known_accuracy"], k["never_known_mean_margin"]] for kind, k in model["kinds"].items()])
        rev = [f for f in model["facts"] if f["kind"] == "reverse"]
        print_table(f"{model['model']}: reverse queries", ["subject", "answer", "own margin", "never-known answered"],
                    [[f["subject"], f["answer"], f["margin"], f"{len(f['never_known_answered'])} of {f['never_known_of']}"]
                     for f in rev])


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.never_known", __doc__)
    p.add_argument("--model", help="a saved checkpoint to measure instead of the shipped base model")
    p.add_argument("--edit", help="JSON settings of loka-deep: measure the base, edit it, measure the edit")
    args = p.parse_args(argv)
    if args.model and args.edit:
        p.error("--model and --edit are two ways to get the measured model: give one")
    try:
        settings = json.loads(args.edit) if args.edit else None
    except json.JSONDecodeError as exc:
        p.error(f"--edit is not JSON ({exc}); e.g. --edit '{{\"seed\": 1}}'")
    if settings is not None and not (isinstance(settings, dict) and isinstance(settings.get("seed", 0), int)):
        p.error("--edit takes a JSON object of loka-deep settings, its seed an integer; e.g. --edit '{\"seed\": 1}'")
    from loka.errors import LokaError
    from loka.methods import get, unlearn

    if settings is not None:
        try:  # before anything loads: a wrong setting is a usage error, not a traceback minutes later
            get("loka-deep").config.from_settings({k: v for k, v in settings.items() if k != "seed"}, method="loka-deep")
        except (LokaError, ValueError, TypeError) as exc:
            p.error(f"--edit: {exc}")
    device = setup(args)
    from bench.real import request
    from loka.io.models import load_hf

    data, task, shipped = request()
    try:
        hf, tok = load_hf(args.model or shipped)
    except LokaError as exc:
        p.error(f"--model: {exc}")
    forget = [f for kind_facts in (data.facts[k] for k in data.facts if k[0] == "forget") for f in kind_facts]
    names = never_known_names(data)
    log(f"{len(forget)} forget facts x {len(names)} never-known names")
    models = [{"model": args.model or "base", **floor(hf, tok, forget, names)}]
    out: dict[str, Any] = {"machine": machine(device), "names": names, "models": models}
    if settings is not None:
        seed = int(settings.pop("seed", 0))
        with Timer() as t:
            unlearn((hf, tok), task, "loka-deep", seed=seed, progress=True, **settings)
        log(f"loka-deep {json.dumps(settings)} seed {seed}: {t.seconds:.0f} s")
        models.append({"model": f"loka-deep {json.dumps(settings | {'seed': seed})}", "seconds": round(t.seconds, 1),
                       **floor(hf, tok, forget, names)})
    return finish(out, args.json, _render)


if __name__ == "__main__":
    raise SystemExit(main())
