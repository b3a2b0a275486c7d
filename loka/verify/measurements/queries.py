"""Other ways of asking: forget accuracy on every template the method never saw, and on reverse queries.

A method that forgets the trained phrasing only has removed a string, not a fact. Each template
family of the data is measured separately: on a world, ``qa`` (a question form trained for
retain-train people only) and ``novel`` (never trained for anyone); in your files, any
``template`` name you give (``heldout``, ...). **Reverse** queries give the answer and ask for
the subject ("The birthplace of ... is Velmora; who?") — a model that forgot only one direction
still answers them. The embedded world states every fact subject-first, so its models cannot
answer reverse queries at all (the reversal curse: trained on "A is B", a model does not learn
"B is A"); reverse queries are measured where the data has them (template ``reverse``), e.g.
the SmolLM2 request in ``examples/``.

Example:
    >>> run(ctx)["unseen_templates"]["qa"]      # doctest: +SKIP
    {'forget': 0.14, 'retain_eval': 0.97, 'retrain_forget': 0.04}
"""

from __future__ import annotations

from typing import Any

from loka.verify.measurements.accuracy import accuracy_of, accuracy_table
from loka.verify.missing import Missing
from loka.verify.registry import Column, Measurement, register

HELDOUT_KINDS = ("qa", "heldout")
REVERSAL = ("the data has no reverse queries (template 'reverse'); the embedded world states facts "
            "subject-first only, and a model trained on 'A is B' cannot answer 'B is A'")


def run(ctx: Any) -> dict[str, Any]:
    acc = ctx.values.get("accuracy") if isinstance(ctx.values.get("accuracy"), dict) else accuracy_table(ctx.me)
    ref = None if ctx.ref is None else ctx.ref.cached("accuracy", lambda: accuracy_table(ctx.ref))
    kinds = sorted({k for s, k in ctx.data.facts if s == "forget" and k != "train" and ctx.data.has(s, k)})
    unseen = {}
    for kind in kinds:
        unseen[kind] = {"forget": accuracy_of(acc, "forget", kind),
                        "retain_eval": accuracy_of(acc, "retain_eval", kind),
                        "retrain_forget": Missing("no retrain model") if ref is None
                        else accuracy_of(ref, "forget", kind)}
    heldout = next((k for k in HELDOUT_KINDS if k in unseen), None)
    return {
        "heldout_template_forget_accuracy": unseen[heldout]["forget"] if heldout
        else Missing("the data has no held-out question template (template 'qa' or 'heldout')"),
        "novel_template_forget_accuracy": unseen["novel"]["forget"] if "novel" in unseen
        else Missing("the data has no never-trained template (template 'novel')"),
        "reverse_forget_accuracy": unseen["reverse"]["forget"] if "reverse" in unseen else Missing(REVERSAL),
        "unseen_templates": unseen,
    }


def caveats(entry: dict[str, Any], retrain: dict[str, Any] | None) -> list[str]:
    forget, out = entry.get("forget_accuracy"), []
    for kind, acc in (entry.get("unseen_templates") or {}).items():
        mine, ref = acc.get("forget"), acc.get("retrain_forget")
        ref = ref if isinstance(ref, float) else 0.0
        if isinstance(forget, float) and isinstance(mine, float) and forget < 0.3 and mine - ref > 0.2:
            what = "reverse queries (answer -> subject)" if kind == "reverse" else f"the '{kind}' template"
            out.append(f"forgets the trained phrasing (forget {forget:.2f}) but still answers "
                       f"{what}: {mine:.2f} (retrain {ref:.2f}) — one direction or form only")
    return out


register(Measurement(
    "queries", keys=("heldout_template_forget_accuracy", "novel_template_forget_accuracy",
                     "reverse_forget_accuracy", "unseen_templates"), run=run, caveats=caveats,
    needs=("forget_facts",),
    columns=(Column("heldout_template_forget_accuracy", "held-out template forget", "outcome", "lower", wide=True),
             Column("novel_template_forget_accuracy", "novel template forget", "attacks", "lower"),
             Column("reverse_forget_accuracy", "reverse query forget", "attacks", "lower")),
    doc="Forget accuracy on templates no method saw (a question form, a never-trained "
        "paraphrase) and on reverse-direction queries, each separately.",
))
