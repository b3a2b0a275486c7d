"""loka-deep's lookup fallback on SmolLM2's shipped request: settings side by side, chosen blind.

    python -m bench.deep_real [--json] [--threads 2] [--prefix P] [--views P,...] [--native] [--base] [--full] [--trace]
                              [--shrink] [--blind ROWS.jsonl] VARIANT...
    python -m bench.deep_real --select ROWS.jsonl [--reveal] [--json]
    python -m bench.deep_real --margins [--json]

``VARIANT`` is a JSON object of `loka-deep` settings (``'{}'``: its defaults; ``'{"lookup_k": 512}'``);
a ``"method"`` key runs another method with the rest as its settings (``'{"method": "loka-ft"}'``).
One process loads the model once and runs each variant on a fresh copy. Per variant:

- **seen** (what the method itself sees: the forget ``train`` rows and the retain facts of the
  method's half of retain.jsonl): first-token accuracy and mean first-answer-token log-prob on
  both, the lookup stage's steps and why it stopped, changed weights, seconds;
- **held out** (never seen by a method): forget accuracy in the held-out question form and on
  the reverse queries; the retain-eval subjects split into same-relation neighbours (other
  fiction's characters, trained templates and question form), the names' other senses
  (`HOMONYMS`) and general knowledge (``attribute == "general"``); perplexity; and with
  ``--full`` the relearning attack's best recall and the LOSS membership-inference AUC (forget vs
  holdout facts), with the verifier's own measurements and `make demo-real`'s settings;
  ``margins``: the first-token margin of each forget fact still answered and of each other fact
  lost, by set and subject (a few hundredths of a nat is a coin flip, not knowledge or damage);
  with ``--trace`` where each reverse query's answer still lives after the edit (`bench.deep_trace`:
  how far its tokens' states moved at the steered block, and its margin once the name, or the
  words after it, read as a stranger's); with ``--shrink`` the same columns for the edit scaled
  down (`scaled`: base + alpha x (edited - base), alpha `SHRINK`): whether a smaller step of the
  same edit keeps the forgetting and gives the neighbours back; with ``--views P,...`` (``views``)
  every set scored again with each other prefix `P` (`attribution.data.PREFIXES`) before the prompts:
  of the facts the base answers that way, how many the edit leaves answered (a fact the base
  answers by 0.03 nats after SmolLM2's BOS, the chat-turn token ``<|im_start|>``, may be a firm one
  without it); ``--native`` is ``--views none``, the prompts as the tokenizer itself encodes them.

``--prefix P`` makes ``P`` the prefix of everything the method trains on and every column measures
(`attribution.data.set_prefix`; default: the one saved with the model's tokenizer — SmolLM2's checkpoint
is saved with ``none``, `loka.io.real`; rows measured before that used ``bos``, its chat token first).

``--margins`` prints the base model's first-answer-token margins (answer log-prob minus the best
other token's) on the retain facts the method sees and on the neighbours: facts answered by a
few hundredths of a nat flip under any edit, and they are the ones every setting loses first;
and the reverse queries' margins beside the same query about a stranger (`STRANGER`).
Base-model margins only, but they name the held-out neighbour facts: not hidden by ``--blind``.

``--blind ROWS`` appends every row, held-out columns included, to ``ROWS`` (JSON lines) and
prints only the seen columns, so that settings can be compared without looking at the test.
``--select ROWS`` applies `select`'s rule (seen columns only) to the loka-deep rows of ``ROWS``
and prints the ranking; ``--reveal`` adds the held-out columns once the choice is made.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from typing import Any

from attribution.data import PREFIXES, prefix_of, set_prefix
from bench._common import finish, log, machine, parser, print_table, setup

# The request's retain facts that name a forget character's name in another sense, or the
# books' real-world neighbours (examples/smollm2/README.md); the other non-"general" subjects
# are other fiction's characters, the same relation as the forget facts.
HOMONYMS = frozenset({"Remus (Rome)", "Ronald Reagan", "Sirius (star)", "The Hobbit", "Ron Howard",
                      "The Lord of the Rings", "Harry Houdini"})
SEEN = ("forget_train", "forget_train_logp", "retain_seen", "retain_seen_logp")
HELD_OUT = ("forget_heldout", "forget_reverse", "neighbours_train", "neighbours_question", "homonyms",
            "general", "retain_eval_train", "perplexity", "relearn_best", "mia_auc_loss", "reverse_trace", "views",
            "native")  # "native": the "none" view in rows written before --views existed
STRANGER = "John Smith"  # `margins`, `bench.deep_trace`: the reverse queries asked of a name the request does not know
SHRINK = (0.9, 0.8, 0.7, 0.6, 0.5)  # ``--shrink``: the edit's scales measured besides the edit itself
TIE = 0.005  # nats of retain-seen log-prob under which two settings count as tied


def neighbours(facts: Sequence[Any]) -> list[Any]:
    """The same-relation neighbours among ``facts``: other fiction's characters (neither general
    knowledge nor `HOMONYMS`)."""
    return [f for f in facts if f.attribute != "general" and f.subject not in HOMONYMS]


def _first(model: Any, tok: Any, prompts: Sequence[str], answers: Sequence[str],
           prefix: str | None = None) -> tuple[Any, Any]:
    """The logits ``[n, vocab]`` that predict each answer's first token, and those tokens ``[n, 1]``
    (``prefix``: the tokenizer's own unless given)."""
    import torch

    from attribution.data import tokenize_facts
    from loka.evaluate import logits_at, prompt_ends

    batch = tokenize_facts(tok, list(prompts), list(answers), prefix=prefix)
    with torch.no_grad():
        first = logits_at(model, batch, prompt_ends(batch)).float()
    return first, batch.answer_ids[:, :1].to(first.device)


def scores(model: Any, tok: Any, facts: Sequence[Any]
           ) -> tuple[float | None, float | None, list[str], list[str], list[float]]:
    """First-token accuracy, mean log-prob of the first answer token, the subjects missed and hit,
    and each fact's first-token margin (`first_token_margins`: > 0 answered, its size how firmly)."""
    from loka.evaluate import first_token_hits, first_token_margins

    if not facts:
        return None, None, [], [], []
    first, answer = _first(model, tok, [f.prompt for f in facts], [f.answer for f in facts])
    hits = first_token_hits(first, answer[:, 0])
    logp = first.log_softmax(-1).gather(-1, answer).mean()
    return (round(float(hits.float().mean()), 4), round(float(logp), 4),
            [f.subject for f, hit in zip(facts, hits.tolist(), strict=True) if not hit],
            [f.subject for f, hit in zip(facts, hits.tolist(), strict=True) if hit],
            [round(float(m), 3) for m in first_token_margins(first, answer[:, 0])])


def fact_sets(data: Any, task: Any) -> dict[str, list[Any]]:
    """The request's facts by column (module doc): seen, held-out forget forms, retain-eval groups."""
    facts = data.facts
    ev_train, ev_q = list(facts[("retain_eval", "train")]), list(facts.get(("retain_eval", "heldout"), ()))
    general = lambda f: f.attribute == "general"  # noqa: E731
    return {"forget_train": list(task.forget), "retain_seen": list(task.retain),
            "forget_heldout": list(facts.get(("forget", "heldout"), ())),
            "forget_reverse": list(facts.get(("forget", "reverse"), ())),
            "neighbours_train": neighbours(ev_train), "neighbours_question": neighbours(ev_q),
            "homonyms": [f for f in ev_train + ev_q if f.subject in HOMONYMS],
            "general": [f for f in ev_train + ev_q if general(f)], "retain_eval_train": ev_train}


def native_margins(model: Any, tok: Any, facts: Sequence[Any], prefix: str = "none") -> list[float]:
    """Each fact's first-answer-token margin with ``prefix`` before its prompt (default ``"none"``:
    the prompt as the tokenizer itself encodes text, where LOKA's convention puts the tokenizer's BOS
    first; SmolLM2's is ``<|im_start|>``)."""
    from loka.evaluate import first_token_margins

    if not facts:
        return []
    first, answer = _first(model, tok, [f.prompt for f in facts], [f.answer for f in facts], prefix)
    return [round(float(m), 3) for m in first_token_margins(first, answer[:, 0])]


def native(base: Any, model: Any, tok: Any, sets: dict[str, list[Any]], prefix: str = "none") -> dict[str, Any]:
    """``--views``: per set, the facts the base answers with ``prefix`` before the prompt
    (`native_margins`), how many of those ``model`` still answers, and the subjects with their margins:
    forget facts still answered, other facts lost."""
    out: dict[str, Any] = {}
    for key, chosen in sets.items():
        known = [(f, e) for f, b, e in zip(chosen, native_margins(base, tok, chosen, prefix),
                                            native_margins(model, tok, chosen, prefix), strict=True) if b > 0]
        kept = [(f.subject, e) for f, e in known if e > 0]
        shown = kept if key.startswith("forget") else [(f.subject, e) for f, e in known if e <= 0]
        out[key] = {"facts": len(chosen), "base_answers": len(known), "still_answered": len(kept), "shown": shown}
    return out


def measure(model: Any, tok: Any, data: Any, task: Any, *, full: bool) -> dict[str, Any]:
    """The seen and held-out columns (module doc) of ``model`` on the request."""
    from bench.real import demo_verify_settings
    from loka.verify.loaded import load_model
    from loka.verify.measure import Measurements
    from loka.verify.measurements.perplexity import perplexity_of
    from loka.verify.missing import Missing

    sets = fact_sets(data, task)
    row: dict[str, Any] = {}
    lost: dict[str, list[str]] = {}
    answered: dict[str, list[str]] = {}
    # how firmly: each answered forget fact's margin, each lost other fact's (how far below; a few
    # hundredths of a nat is a coin flip, not knowledge or damage)
    firm: dict[str, dict[str, list[float]]] = {}
    for key, chosen in sets.items():
        row[key], logp, missed, hit, gaps = scores(model, tok, chosen)
        if key in ("forget_train", "retain_seen"):
            row[f"{key}_logp"] = logp
        if missed and not key.startswith("forget"):
            lost[key] = missed
        if hit and key.startswith("forget"):
            answered[key] = hit
        shown = [(f.subject, g) for f, g in zip(chosen, gaps, strict=True) if (g > 0) == key.startswith("forget")]
        for subject, g in shown:
            firm.setdefault(key, {}).setdefault(subject, []).append(g)
    me = Measurements(load_model((model, tok), name="model"), data, demo_verify_settings())
    ppl = perplexity_of(me)
    row["perplexity"] = None if isinstance(ppl, Missing) else round(float(ppl), 2)
    if full:
        from loka.verify.measurements.mia import mia_of
        from loka.verify.measurements.relearn import relearn_of

        relearn, mia = relearn_of(me), mia_of(me)
        row["relearn_best"] = None if isinstance(relearn, Missing) else relearn.best
        auc = None if isinstance(mia, Missing) else mia.auc.get("loss")
        row["mia_auc_loss"] = None if auc is None or isinstance(auc, Missing) else round(float(auc), 4)
    row["lost"], row["answered"], row["margins"] = lost, answered, firm
    return row


def scaled(base: Any, edited: Any, alpha: float) -> Any:
    """A copy of ``edited`` whose every weight is ``base + alpha x (edited - base)`` (alpha 1: the
    edit, alpha 0: the base)."""
    import torch

    out = copy.deepcopy(edited)
    before = dict(base.named_parameters())
    with torch.no_grad():
        for name, p in out.named_parameters():
            if not torch.equal(p, before[name]):
                p.copy_(before[name] + alpha * (p - before[name]))
    return out


def run_variant(hf: Any, tok: Any, data: Any, task: Any, variant: str, *, full: bool,
                trace: bool = False, shrink: Sequence[float] = (), views: Sequence[str] = ()) -> dict[str, Any]:
    """One variant on a fresh copy of the loaded model: its stage log, `measure`'s columns, with
    ``trace`` the reverse queries' `bench.deep_trace` against the loaded (base) model, with ``views``
    every set scored with each of those prefixes (`native`), and with ``shrink`` `measure`'s columns
    of the edit scaled by each alpha (`scaled`)."""
    from loka.methods import unlearn

    settings = json.loads(variant)
    method = settings.pop("method", "loka-deep")
    model = copy.deepcopy(hf)
    t0 = time.perf_counter()
    result = unlearn((model, tok), task, method, progress=False, **settings)
    seconds = round(time.perf_counter() - t0, 1)
    stage = next((e for e in result.log if e.get("stage") == "lookup_misdirection"), {})
    row = {"variant": variant, "method": method, "prefix": prefix_of(tok), "seconds": seconds, "params_changed": result.params_changed,
           "steps": result.steps, "stopped": stage.get("stopped"), "stage": stage,
           **measure(model, tok, data, task, full=full)}
    if trace and "layer" in stage:
        from bench.deep_trace import trace as trace_reverse

        row["reverse_trace"] = trace_reverse(hf, model, tok, data.facts.get(("forget", "reverse"), ()), stage["layer"])
    if views:
        sets = fact_sets(data, task)
        row["views"] = {p: native(hf, model, tok, sets, p) for p in views}
    if shrink:
        row["shrink"] = [{"alpha": a, **measure(scaled(hf, model, a), tok, data, task, full=False)} for a in shrink]
    return row


def margins(model: Any, tok: Any, data: Any, task: Any, lowest: int = 8) -> dict[str, Any]:
    """The model's first-answer-token margin (the answer's log-prob minus the best other token's)
    on the retain facts the method sees and on the neighbours: how many are answered by a hair."""
    from loka.evaluate import first_token_margins

    def gaps(prompts: list[str], answers: list[str]) -> tuple[list[float], list[str]]:
        first, answer = _first(model, tok, prompts, answers)
        return (first_token_margins(first, answer[:, 0]).tolist(),
                [tok.decode([int(i)]).strip() for i in first.argmax(-1).tolist()])

    ev = list(data.facts[("retain_eval", "train")]) + list(data.facts.get(("retain_eval", "heldout"), ()))
    sets = {"retain_seen": list(task.retain),
            "neighbours": neighbours(ev)}
    out: dict[str, Any] = {}
    for name, facts in sets.items():
        gap, _ = gaps([f.prompt for f in facts], [f.answer for f in facts])
        ranked = sorted(zip(gap, facts, strict=True), key=lambda t: t[0])
        out[name] = {"facts": len(facts), **{f"below_{c}": sum(g < c for g, _ in ranked) for c in (0.0, 0.1, 0.25, 0.5)},
                     "lowest": [{"margin": round(g, 3), "subject": f.subject, "prompt": f.prompt} for g, f in ranked[:lowest]]}
    # the reverse queries, and the same with a stranger's name: is the answer the subject's or the phrase's?
    rev = list(data.facts.get(("forget", "reverse"), ()))
    own, _ = gaps([f.prompt for f in rev], [f.answer for f in rev])
    alien, top = gaps([f.prompt.replace(f.subject, STRANGER) for f in rev], [f.answer for f in rev])
    out["reverse"] = [{"subject": f.subject, "prompt": f.prompt, "answer": f.answer, "margin": round(a, 3),
                       "stranger_margin": round(b, 3), "stranger_answer": t}
                      for f, a, b, t in zip(rev, own, alien, top, strict=True)]
    return out


def seen_only(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in HELD_OUT and k not in ("lost", "answered", "margins", "shrink")}


def select(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The pre-registered rule, on seen columns only: eligible are loka-deep rows whose stage ended
    at forget-train accuracy 0 without being stopped by the retain budget; the highest retain-seen
    mean log-prob wins; within `TIE` nats, fewest changed weights, then fewest steps. Returns the
    pick (None: nothing eligible) and the eligible rows in rank order."""
    if len({r.get("prefix", "bos") for r in rows}) > 1:
        raise ValueError("the rows were measured under different prefixes (--prefix): select among one at a time")
    eligible = [r for r in rows if r.get("method") == "loka-deep" and r.get("forget_train") == 0
                and r.get("stopped") != "retain budget"]
    if not eligible:
        return None, []
    best_logp = max(r["retain_seen_logp"] for r in eligible)
    ranked = sorted(eligible, key=lambda r: (-r["retain_seen_logp"], r["params_changed"], r["steps"]))
    tied = [r for r in ranked if best_logp - r["retain_seen_logp"] < TIE]
    pick = min(tied, key=lambda r: (r["params_changed"], r["steps"]))
    return pick, ranked


def _render(out: dict[str, Any]) -> None:
    rows = out.get("rows", [])
    cols = [c for c in ("seconds", "params_changed", "steps", "stopped", *SEEN, *HELD_OUT)
            if any(c in r for r in rows) and c not in ("reverse_trace", "views")]
    if rows:
        print_table("loka-deep on SmolLM2's request (bench.deep_real)", ("variant", *cols),
                    [(r["variant"], *(r.get(c) for c in cols)) for r in rows])
    for r in rows:
        if r.get("shrink"):
            print_table(f"the edit of {r['variant']} scaled down (bench.deep_real --shrink)", ("alpha", *SEEN, *HELD_OUT[:8]),
                        [(s["alpha"], *(s.get(c) for c in (*SEEN, *HELD_OUT[:8]))) for s in r["shrink"]])
        for view, sets in r.get("views", {}).items():
            print_table(f"{r['variant']}, prefix {view!r} before every prompt (bench.deep_real --views {view})",
                        ("set", "facts", "base answers", "still answered", "forget answered / other lost (margin)"),
                        [(k, v["facts"], v["base_answers"], v["still_answered"],
                          ", ".join(f"{s} {m:+.3f}" for s, m in v["shown"])) for k, v in sets.items()])
        if r.get("reverse_trace"):
            print_table(f"reverse queries after {r['variant']} (bench.deep_trace; margins in nats)",
                        ("subject", "base", "edited", "moved: name / after", "after read a stranger's",
                         "name read a stranger's"),
                        [(t["subject"], t["margin_base"], t["margin_edited"], f"{t['moved_name']} / {t['moved_after']}",
                          t["after_stranger"], t["name_stranger"]) for t in r["reverse_trace"]])
    if "pick" in out:
        print(f"rule's pick: {out['pick'] and out['pick']['variant']}")
    margins_ = dict(out.get("margins", {}))
    if "reverse" in margins_:
        print_table(f"reverse queries: the subject vs {STRANGER!r}", ("prompt", "answer", "margin", "stranger margin",
                                                                     "stranger's answer"),
                    [(r["prompt"], r["answer"], r["margin"], r["stranger_margin"], r["stranger_answer"])
                     for r in margins_.pop("reverse")])
    for name, m in margins_.items():
        counts = ", ".join(f"{k.removeprefix('below_')}: {v}" for k, v in m.items() if k.startswith("below_"))
        print(f"{name}: {m['facts']} facts; base margin below (nats) {counts}")
        print_table(f"lowest margins, {name}", ("margin", "subject", "prompt"),
                    [(r["margin"], r["subject"], r["prompt"][-60:]) for r in m["lowest"]])


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.deep_real", __doc__)
    p.add_argument("variants", nargs="*", help="JSON settings of loka-deep (a \"method\" key: another method)")
    p.add_argument("--base", action="store_true", help="measure the base model first")
    p.add_argument("--full", action="store_true", help="add the relearning attack and the MIA AUC")
    p.add_argument("--trace", action="store_true", help="trace where each reverse query's answer still lives")
    p.add_argument("--shrink", action="store_true", help=f"also measure the edit scaled by {SHRINK}")
    p.add_argument("--prefix", default=None, choices=PREFIXES,
                   help="what goes before every text the method trains on and every column scores "
                        "(default: the one saved with the model; SmolLM2: none)")
    p.add_argument("--views", default="", metavar="P,...",
                   help="also score every set with each of these prefixes (edited variants; not the base row)")
    p.add_argument("--native", action="store_true", help="--views none: the prompts as the tokenizer encodes them")
    p.add_argument("--blind", default=None, metavar="ROWS", help="append full rows to ROWS, print seen columns only")
    p.add_argument("--select", default=None, metavar="ROWS", help="apply the selection rule to ROWS")
    p.add_argument("--reveal", action="store_true", help="with --select: print the held-out columns too")
    p.add_argument("--margins", action="store_true", help="the base model's answer margins on the retain facts")
    args = p.parse_args(argv)
    views = list(dict.fromkeys([v.strip() for v in args.views.split(",") if v.strip()] + (["none"] if args.native else [])))
    if unknown := [v for v in views if v not in PREFIXES]:
        p.error(f"--views: unknown prefix {', '.join(unknown)}; use {', '.join(PREFIXES)}")
    if args.select:
        with open(args.select, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        try:
            pick, ranked = select(rows)
        except ValueError as e:
            p.error(str(e))
        show = (lambda r: r) if args.reveal else seen_only
        return finish({"rule": select.__doc__, "pick": pick and show(pick),
                       "rows": [show(r) for r in ranked + [r for r in rows if r not in ranked]]}, args.json, _render)
    if not args.variants and not args.base and not args.margins:
        p.error("give at least one VARIANT, --base or --margins")
    device = setup(args)
    from bench.real import request
    from loka.io.models import load_hf

    data, task, model = request()
    hf, tok = load_hf(model)
    prefix = args.prefix or prefix_of(tok)
    for t in (tok, data.tokenizer):  # the model's and the verifier's data's (checked against each other)
        set_prefix(t, prefix)
    out: dict[str, Any] = {"machine": machine(device), "rows": []}
    if args.margins:
        out["margins"] = margins(hf, tok, data, task)
        log(f"base margins: {json.dumps(out['margins'])}")
    todo = (["base"] if args.base else []) + list(args.variants)
    for variant in todo:
        if variant == "base":
            row = {"variant": "base", "method": "base", "prefix": prefix,
                   **measure(hf, tok, data, task, full=args.full)}
        else:
            row = run_variant(hf, tok, data, task, variant, full=args.full, trace=args.trace,
                              shrink=SHRINK if args.shrink else (), views=views)
        if args.blind:
            with open(args.blind, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, default=float) + "\n")
        out["rows"].append(seen_only(row) if args.blind else row)
        log(f"{variant}: {json.dumps(out['rows'][-1], default=float)}")
    return finish(out, args.json, _render)


if __name__ == "__main__":
    raise SystemExit(main())
