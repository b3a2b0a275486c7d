"""Where does the relearning attack find loka-deep's forgotten facts on SmolLM2? The attack with its parameters split.

    python -m bench.deep_relearn [--json] [--threads 2] [--seed S] [--steps N] [VARIANT]

The verifier's relearning attack (`loka.verify.measurements.relearn`, with `make demo-real`'s
settings: full-batch AdamW at lr 3e-4 on half the forget characters' trained facts, recall of
the other half's) brings back 0.29-0.47 of loka-deep's forgotten facts on SmolLM2 (README). A
model that never knew them would recall none, but a real model has no retrained twin to show
that; and the recall alone does not say whether the knowledge survived inside the edited weights
or around them. One run measures, with the same attack, the same steps and the same split:

- **never known** (the floor): the base model attacked on the request's holdout — invented
  characters it does not answer — trained on half of them, recall of the other half: what the
  attack teaches by itself, the level a model that never knew the forget facts would reach;
- **base**: the base model attacked on the forget facts (it knows them all);
- **edited, all**: the edited model (``VARIANT``, a JSON object of loka-deep settings, ``'{}'``
  by default, with ``--seed``), every parameter trained — the verifier's number;
- **edited, edited matrices only**: the attack may change only the weight matrices the edit
  changed (the whole MLP matrices of blocks ``0..layer`` that hold the lookup slices, not only
  the slices' rows and columns);
- **edited, all but those**: it may change every other parameter (attention, embeddings,
  norms, the MLPs above) and none of the edited matrices.

If the attack recovers as much through the untouched parameters as through all of them, the
facts are still computed by the network and the edit only hides them where it steers: the
answer needs another way back, not the knowledge. If only the edited matrices bring them back,
the edit is a small move those matrices undo.

Beside the attack, no training at all: **directional ablation** (Lucki et al. 2024, "An
Adversarial Perspective on Machine Unlearning for AI Safety", against RMU). The edit steers every
forget subject's states after block ``layer`` towards one direction; projecting the mean edited
subject state's direction out of every position's state there (a forward hook) and asking the
forget facts again (trained, held-out question, reverse; the seen retain facts beside them) shows
how much of the answer that one shared direction switches off. Skipped for a variant with
``lookup_per_subject`` (one direction per subject: no one direction to project out).
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from typing import Any

from bench._common import finish, log, machine, parser, print_table, setup


def changed_params(base: Any, edited: Any) -> set[str]:
    """Names of the parameters whose values differ between ``base`` and ``edited``."""
    import torch

    before = dict(base.named_parameters())
    return {n for n, p in edited.named_parameters() if not torch.equal(p, before[n])}


def attack(model: Any, tok: Any, facts: Any, *, steps: int, lr: float, eval_every: int, seed: int,
           trainable: Any = None) -> dict[str, Any]:
    """The verifier's relearning attack on ``facts`` (half the subjects trained, the other half
    tested), with ``trainable`` (a name predicate) limiting what it may change."""
    from loka.verify.measurements.relearn import relearn_attack
    from loka.verify.missing import Missing

    t0 = time.perf_counter()
    result = relearn_attack(model, tok, facts, steps=steps, lr=lr, eval_every=eval_every, seed=seed,
                            trainable=trainable)
    if isinstance(result, Missing):
        raise SystemExit(f"bench.deep_relearn: {result}")
    return {"steps": result.steps, "test": [round(x, 4) for x in result.recall],
            "train": [round(x, 4) for x in result.trained_recall], "best": round(result.best, 4),
            "n_train": result.n_train_facts, "n_test": result.n_test_facts,
            "seconds": round(time.perf_counter() - t0, 1)}


def project_out(hidden: Any, u: Any) -> Any:
    """``hidden`` with its component along the unit vector ``u`` removed (last dimension)."""
    u = u.to(hidden.dtype)
    return hidden - (hidden @ u)[..., None] * u


def direction_ablated(base: Any, edited: Any, tok: Any, data: Any, task: Any, layer: int) -> dict[str, Any]:
    """First-token accuracy of the forget facts (and the seen retain facts) on ``edited`` and on
    ``base``, with and without the edited forget subjects' mean state direction after block
    ``layer`` projected out of every position's state there."""
    import torch

    from bench.deep_real import scores
    from loka.methods.localized.deep_lookup import block_output_edited, hidden_at
    from loka.methods.localized.deep_rows import subject_rows

    forget = list(task.forget)
    rows, where = subject_rows(tok, forget)
    with torch.no_grad():
        states = hidden_at(edited, rows, layer).float()[where]
    u = states.mean(0)
    u = u / u.norm()
    sets = {"forget_train": forget, "forget_heldout": list(data.fact_set("forget", "heldout")),
            "forget_reverse": list(data.fact_set("forget", "reverse")), "retain_seen": list(task.retain)}

    out: dict[str, Any] = {"layer": layer, "subject_states_along_u": round(float((states @ u).mean()), 3),
                           "subject_state_norm": round(float(states.norm(dim=-1).mean()), 3)}
    for name, model in (("edited", edited), ("base", base)):
        for ablated in (False, True):
            with block_output_edited(model, layer, lambda h: project_out(h, u)) if ablated \
                    else contextlib.nullcontext():
                out[f"{name}{', ablated' if ablated else ''}"] = {
                    k: scores(model, tok, facts)[0] for k, facts in sets.items() if facts}
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.deep_relearn", __doc__)
    p.add_argument("variant", nargs="?", default="{}", help="JSON settings of loka-deep (default: its defaults)")
    p.add_argument("--steps", type=int, default=None, help="attack steps (default: make demo-real's)")
    args = p.parse_args(argv)
    device = setup(args)
    from bench.real import demo_verify_settings, request
    from loka.io.models import load_hf
    from loka.methods import unlearn

    settings = json.loads(args.variant)
    if not isinstance(settings, dict):
        p.error("VARIANT is a JSON object of loka-deep settings, e.g. '{}' or '{\"lookup_k\": 512}'")
    settings.setdefault("seed", args.seed)
    demo = demo_verify_settings()
    knobs = {"steps": args.steps or demo.relearn_steps, "lr": demo.relearn_lr,
             "eval_every": demo.relearn_eval_every, "seed": demo.seed}
    data, task, model_dir = request()
    hf, tok = load_hf(model_dir)
    forget, holdout = data.fact_set("forget"), data.fact_set("holdout")
    out: dict[str, Any] = {"machine": machine(device), "variant": json.dumps(settings), "attack": knobs, "rows": []}

    def row(name: str, result: dict[str, Any]) -> None:
        out["rows"].append({"row": name, **result})
        log(f"{name}: recall of the held-back half {result['test']} at steps {result['steps']}")

    row("never known (base, holdout's invented characters)", attack(hf, tok, holdout, **knobs))
    row("base (forget facts)", attack(hf, tok, forget, **knobs))
    edited = copy.deepcopy(hf)
    t0 = time.perf_counter()
    result = unlearn((edited, tok), task, "loka-deep", progress=False, **settings)
    out["unlearn_seconds"] = round(time.perf_counter() - t0, 1)
    touched = changed_params(hf, edited)
    out["edited_matrices"] = sorted(touched)
    log(f"loka-deep {out['variant']}: {len(touched)} matrices changed in {out['unlearn_seconds']} s")
    stage = next((e for e in result.log if e.get("stage") == "lookup_misdirection"), {})
    if "layer" in stage and not settings.get("lookup_per_subject"):
        out["direction_ablation"] = direction_ablated(hf, edited, tok, data, task, int(stage["layer"]))
        log(f"directional ablation: {json.dumps(out['direction_ablation'])}")
    row("edited, all parameters", attack(edited, tok, forget, **knobs))
    row("edited, edited matrices only", attack(edited, tok, forget, trainable=touched.__contains__, **knobs))
    row("edited, all but the edited matrices",
        attack(edited, tok, forget, trainable=lambda n: n not in touched, **knobs))
    return finish(out, args.json, _render)


def _render(out: dict[str, Any]) -> None:
    print_table(f"relearning attack ({out['attack']}) on {out['variant']} — recall of the held-back half",
                ("row", "recall by step", "best", "trained half", "facts train / test", "s"),
                [(r["row"], " / ".join(f"{x:.2f}" for x in r["test"]), f"{r['best']:.2f}",
                  f"{r['train'][-1]:.2f}", f"{r['n_train']} / {r['n_test']}", r["seconds"]) for r in out["rows"]])
    ab = out.get("direction_ablation")
    if ab:
        runs = [k for k in ab if isinstance(ab[k], dict)]
        cols = list(ab[runs[0]])
        print_table(f"first-token accuracy with the edited subjects' mean direction after block {ab['layer']} "
                    "projected out", ("model", *cols), [(k, *(ab[k].get(c) for c in cols)) for k in runs])


if __name__ == "__main__":
    raise SystemExit(main())
