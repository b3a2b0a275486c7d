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
beside its never-known one. The arithmetic is the verifier's `never_known` measurement
(`loka.verify.measurements.never_known.floor`, which `loka verify` runs on up to 16 holdout
people); this bench asks about all 31 names and runs the edit itself.

With ``--edit JSON`` the base model is measured, then `loka-deep` with those settings runs on it
and the edited model is measured too: does the edit take never-known names' answers down with the
person's (forgetting below the floor)? ``--model DIR`` measures a saved checkpoint instead of the
shipped base.

Example:
    >>> never_known_names(request()[0])[:2]          # doctest: +SKIP
    ['Ambrose Tilling', 'Bartholomew Quillfeather']
"""

from __future__ import annotations

import json
from typing import Any

from bench._common import Timer, finish, log, machine, parser, print_table, setup
from loka.verify.measurements.never_known import floor, forget_facts


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
    forget = forget_facts(data)
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
