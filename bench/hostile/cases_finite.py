"""Group 1 of the issue: settings that overflow, and models that are already NaN.

An edit may diverge (then: a one-line refusal, nothing saved) or succeed (then: the saved
checkpoint reloads with every weight and output finite). A model with non-finite weights, or
finite weights whose outputs overflow, is never verified as an erased one.
"""

from __future__ import annotations

from bench.hostile import oracles
from bench.hostile.harness import Case

_DATA = ("--model", "{M}", "--forget", "{forget}", "--retain", "{retain}")
_SAVED = oracles.both(oracles.checkpoint(), lambda run, ctx: "a step -1 in the notes"
                      if "step -1" in run.stdout else None)


def _unlearn(method: str, *settings: str) -> tuple[str, ...]:
    argv: tuple[str, ...] = ("unlearn", "--method", method, *_DATA, "--out", "{out}")
    for s in settings:
        argv += ("--set", s)
    return argv


SETTINGS: list[tuple[str, tuple[str, ...]]] = [
    *[("task_vector", (f"scale={s}", "steps=3")) for s in ("1e300", "1e38", "1e20", "1e10", "1e5", "1e3")],
    *[("gradient_ascent", (f"lr={lr}", "epochs=2")) for lr in ("1e-4", "1e-2", "1", "1e2", "1e4", "1e30")],
    *[(m, ("lr=1e4", "epochs=2")) for m in ("grad_diff", "npo", "counterexample")],
    ("gradient_ascent", ("lr=1e4", "epochs=2", "max_forget_nll=1e30")),
    ("gradient_ascent", ("lr=1e4", "epochs=2", "weight_decay=1e30")),
    ("npo", ("lr=1", "epochs=2", "beta=1e30")),
    ("grad_diff", ("lr=1", "epochs=2", "alpha=1e30")),
    ("loka-ft", ("lr=1e4", "steps=5", "k=32")),
    ("loka-ft", ("lr=1e30", "steps=5", "k=32", "retain_weight=1e30")),
    ("loka-mask", ("lr=1e4", "steps=5", "k=32")),
    ("loka-mask", ("theta0=1e30", "steps=3", "k=32")),
    ("loka", ("max_rounds=2", "per_round=4")),
    ("output_suppression", ()),
]

FACTORS = ("1e39", "3.5e38", "1e38", "1e30", "1e10", "-1e39", "1e-45", "0", "-1", "1e308")
NON_NUMBERS = ("nan", "inf", "-inf")


def _verify(model: str) -> tuple[str, ...]:
    return ("verify", "--model", model, "--forget", "{forget}", "--retain", "{retain}", "--json")


def cases() -> list[Case]:
    out = [Case("1 non-finite", f"unlearn {m} {' '.join(s)}", _unlearn(m, *s), expect="either",
                oracle=_SAVED, quick=m == "task_vector" and s[0] == "scale=1e300")
           for m, s in SETTINGS]
    for f in FACTORS:
        out.append(Case("1 non-finite", f"ablate --mode rescale --factor {f}",
                        ("ablate", "--model", "{M}", "--ranking", "{rankM}", "--top", "5", "--mode",
                         "rescale", f"--factor={f}", "--out", "{out}"), expect="either",
                        oracle=oracles.checkpoint(), quick=f == "1e39"))
    for f in NON_NUMBERS:
        out.append(Case("1 non-finite", f"ablate --factor {f}",
                        ("ablate", "--model", "{M}", "--ranking", "{rankM}", "--top", "5", "--mode",
                         "rescale", f"--factor={f}", "--out", "{out}"), says="finite"))
    for which in ("nan", "inf", "overflow"):
        model = "{" + which + "}"
        say = "not finite|NaN or infinite|overflow|NaN or infinity"
        out += [
            Case("1 non-finite", f"verify a {which} model on files", _verify(model), says=say,
                 quick=which == "nan"),
            Case("1 non-finite", f"verify a {which} model on the world",
                 ("verify", "--model", model, "--preset", "tiny", "--json"), says=say),
            Case("1 non-finite", f"verify with a {which} base", ("verify", "--model", "{ckpt}", "--forget",
                 "{forget}", "--retain", "{retain}", "--base", model, "--json"), says=say),
            Case("1 non-finite", f"attribute a {which} model", ("attribute", "--model", model, "--forget",
                 "{forget}", "--retain", "{retain}", "--out", "{out}.json"), says=say),
            Case("1 non-finite", f"unlearn a {which} model", ("unlearn", "--method", "gradient_ascent",
                 "--model", model, "--forget", "{forget}", "--retain", "{retain}", "--set", "epochs=1",
                 "--out", "{out}"), expect="either", oracle=oracles.checkpoint()),
            Case("1 non-finite", f"ablate a {which} model", ("ablate", "--model", model, "--ranking",
                 "{rankM}", "--top", "3", "--allow-other-model", "--out", "{out}"), expect="either",
                 oracle=oracles.checkpoint()),
            Case("1 non-finite", f"demo on a {which} model", ("demo", "--model", model, "--forget",
                 "{forget}", "--retain", "{retain}", "--methods", "base", "--out", "{out}"), says=say),
        ]
    return out
