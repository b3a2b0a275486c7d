"""Localization graded against an answer key: the planted world (`loka.world.spec.PlantSpec`).

    python -m bench.localization [--seeds 0,1,2] [--methods patch,atp,ig,actstats,lookup]
                                 [--unlearn loka,loka-ft,loka-deep,loka[kinds=neuron]]
                                 [--figures DIR] [--json]

Per world seed (each its own planted world: base trained with the forget data routed into the
planted neurons, retrain trained as usual):

1. The plant check (`loka.workflows.localization.plant_check`): zero-ablating the planted set vs
   random sets of the same shape; forget accuracy against retrain's, retain-eval against base's,
   and what survives the ablation (leakage).
2. Every attribution method ranks the MLP neurons on the base model from the forget facts and
   the retain-train facts (what an unlearning method may see) — patch, atp, ig, actstats, and
   ``lookup``, `loka-deep`'s fact-lookup attribution (gradient x activation at the subject's
   tokens; facts only, a passage has no subject) — and is graded against the
   planted set: precision and recall at k = |planted|, average precision, seconds, with a random
   ranking's values as the floor. Graded three ways: by the facts' contrast score (forget
   effect against retain effect, what `loka` ranks by), by the facts' forget score alone, and
   by the whole forget set — its facts and its passages, each ranked against the retain
   facts / passages and joined (`loka.workflows.localization.forget_set_scores`): the forget
   data is more than its answers, and so is what the planted neurons learned.
3. ``loka``, ``loka-ft`` and ``loka-deep`` with their defaults, and ``loka[kinds=neuron]``
   (``METHOD[KEY=VALUE;...]``: a method with settings, its own row), verified with every registered
   measurement against retrain (`loka.workflows.compare`), beside ``planted-ablation`` (the
   answer key itself zero-ablated, verified the same way: the oracle, and a leak detector —
   its probe, relearning and membership columns say whether the knowledge is also elsewhere).

Figures (``--figures``, seed of the first world): the planted set and each method's top-k on
the layer x neuron map, and precision-recall curves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench._common import finish, log, machine, parser, print_table
from bench.robust import COLUMNS, _get, targets

METHODS = "patch,atp,ig,actstats,lookup"
UNLEARN = "loka,loka-ft,loka-deep,loka[kinds=neuron]"
ORACLE = "planted-ablation"


def _lookup_ranking(art: Any) -> Any:
    """`loka-deep`'s fact-lookup attribution (`deep_lookup.lookup_scores`) as a `Ranking`: every
    MLP neuron's ``|a . dlogp(answer)/da|`` summed over the subject's tokens, on the forget facts
    and on the retain-train facts (their subjects; rows without one: every token), contrasted as
    loka-deep does (forget - retain)."""
    from attribution.components import Component
    from attribution.ranking import Ranking
    from loka.io.models import load_hf
    from loka.methods.localized.deep_lookup import lookup_scores
    from loka.methods.localized.deep_rows import subject_rows

    model, tok = load_hf(art.base_dir)
    n_layers, d_mlp = art.spec.model.n_layers, art.spec.model.d_mlp
    t0 = time.perf_counter()
    scores = []
    for split in ("forget", "retain_train"):
        facts = art.world.facts(split)
        rows, where = subject_rows(tok, facts)
        where = where | ~where.any(-1, keepdim=True) & rows.mask.bool()
        scores.append(lookup_scores(model, rows, where, n_layers).flatten())
    return Ranking(components=tuple(Component(i // d_mlp, "neuron", i % d_mlp) for i in range(n_layers * d_mlp)),
                   forget_scores=scores[0], retain_scores=scores[1], formula="difference", weight=1.0,
                   method="lookup", ablation="zero", model_id=art.root.name, forget_hash="", retain_hash="",
                   forget_metric="answer_logprob", retain_metric="answer_logprob",
                   seconds=time.perf_counter() - t0, forward_passes=0, backward_passes=0,
                   options={"positions": "subject"})


def _rank_all(art: Any, methods: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Each method's neuron ranking on the base model, and its grades: by the facts' contrast,
    by the facts' forget score alone, and by the whole forget set's contrast (facts and
    passages, `forget_set_scores`)."""
    from attribution import rank, tokenize_facts, tokenize_passages
    from loka.io.models import load_bridge
    from loka.workflows.localization import forget_set_scores, planted_components, score_ranking

    bridge = load_bridge(art.base_dir)
    tok, n_ctx = bridge.tokenizer, bridge.cfg.n_ctx
    batch = {split: tokenize_facts(tok, [f.prompt for f in art.world.facts(split)],
                                   [f.answer for f in art.world.facts(split)], max_len=n_ctx)
             for split in ("forget", "retain_train")}
    passages = {split: [p.text for p in art.world.passages_in(split)] for split in ("forget", "retain")}
    pbatch = ({split: tokenize_passages(tok, texts, max_len=n_ctx) for split, texts in passages.items()}
              if all(passages.values()) else None)
    planted = planted_components(art.spec)
    rankings: dict[str, Any] = {}
    grades: dict[str, Any] = {}
    joined_scores: dict[str, Any] = {}  # the forget-set scores (figures), not in the JSON
    for method in methods:
        options: dict[str, Any] = {"progress": False} if method == "patch" else {}
        t0 = time.perf_counter()
        if method == "lookup":  # loka-deep's, on facts only (a passage has no subject)
            r = _lookup_ranking(art)
        else:
            r = rank(bridge, batch["forget"], batch["retain_train"], method, kinds=("neuron",), **options)
        seconds = time.perf_counter() - t0
        rankings[method] = r
        grades[method] = {"seconds": round(seconds, 3),
                          "contrast": score_ranking(r.scores("contrast"), r.components, planted),
                          "forget": score_ranking(r.scores("forget"), r.components, planted)}
        if pbatch is not None and method != "lookup":
            t0 = time.perf_counter()
            rp = rank(bridge, pbatch["forget"], pbatch["retain"], method, kinds=("neuron",), **options)
            joined = forget_set_scores([r, rp])
            grades[method]["forget_set"] = score_ranking(joined, r.components, planted)
            joined_scores[method] = joined
            grades[method]["seconds_forget_set"] = round(seconds + time.perf_counter() - t0, 3)
        g = grades[method]["contrast"]
        log(f"  {method}: precision@{g['k']} {g['precision_at_k']:.3f}, AP {g['average_precision']:.3f} "
            f"(random {g['random_precision_at_k']:.3f}, {g['random_average_precision']:.3f}), {seconds:.1f}s"
            + (f"; forget set: {grades[method]['forget_set']['precision_at_k']:.3f}, AP "
               f"{grades[method]['forget_set']['average_precision']:.3f}" if method in joined_scores else ""))
    return rankings, joined_scores, grades


def _oracle_entry(art: Any) -> dict[str, Any]:
    """The planted set zero-ablated, verified like every method (same references as compare)."""
    import copy

    from loka.engine import AblationPlan, commit
    from loka.io.models import load_bridge
    from loka.verify.loaded import load_model
    from loka.verify.measure import VerifySettings
    from loka.verify.verifier import verify
    from loka.workflows.compare import references_of
    from loka.workflows.localization import planted_components

    vs = VerifySettings()
    data, reference, base = references_of(art, vs)
    t0 = time.perf_counter()
    bridge = load_bridge(art.base_dir)
    journal = commit(bridge, AblationPlan.zero(planted_components(art.spec)))
    model = copy.deepcopy(bridge.original_model)
    seconds = time.perf_counter() - t0
    loaded = load_model((model, art.tokenizer()), name=ORACLE)
    return verify(loaded, data, retrain=reference, base=base, name=ORACLE, seconds=seconds,
                  params_changed=journal.n_changed(), settings=vs).to_dict()


def variant(item: str) -> tuple[str, dict[str, str]]:
    """``"loka[kinds=neuron;mode=mean]"`` -> ``("loka", {"kinds": "neuron", "mode": "mean"})``;
    ``"loka"`` -> ``("loka", {})`` (values are typed by the method's Config)."""
    from loka.cli.inputs import parse_set

    name, _, rest = item.partition("[")
    if rest and not rest.endswith("]"):
        raise SystemExit(f"--unlearn: expected METHOD[KEY=VALUE;...], got {item!r}")
    return name, parse_set([kv for kv in rest[:-1].split(";") if kv]) if rest else {}


def run_seed(art: Any, methods: list[str], unlearn: list[str], workers: int) -> dict[str, Any]:
    from loka.workflows.compare import compare
    from loka.workflows.localization import plant_check

    t0 = time.perf_counter()
    check = plant_check(art)
    log(f"  plant check ({time.perf_counter() - t0:.0f}s): took={check['took']} "
        f"random_does_not={check['random_does_not']} forget {check['base']['forget_accuracy']} -> "
        f"{check['planted_ablated']['forget_accuracy']} (retrain {check['retrain']['forget_accuracy']}), "
        f"retain {check['base']['retain_accuracy']} -> {check['planted_ablated']['retain_accuracy']}")
    rankings, joined, grades = _rank_all(art, methods)
    entries: dict[str, Any] = {}
    if unlearn:
        t0 = time.perf_counter()
        plain = [m for m in unlearn if "[" not in m]
        results = compare(art, ["base", "retrain", *plain], out=None, progress=False, workers=workers)
        entries = results["methods"]
        for item in (m for m in unlearn if "[" in m):  # a method with settings: its own comparison
            name, settings = variant(item)
            one = compare(art, [name], settings={name: settings}, out=None, progress=False, workers=1)
            entries[item] = one["methods"][name]
        entries[ORACLE] = _oracle_entry(art)
        log(f"  unlearning and verification ({time.perf_counter() - t0:.0f}s)")
    return {"world": art.info(), "plant": check, "attribution": grades, "methods": entries,
            "_rankings": rankings, "_joined": joined}


def _summary(values: list[Any], worse: Any) -> dict[str, Any]:
    nums = [x for x in values if isinstance(x, int | float) and not isinstance(x, bool)]
    return {"per_seed": values, "mean": sum(nums) / len(nums) if nums else None,
            "worst": (worse(nums) if worse else max(nums, key=abs)) if nums else None}


def run(args: Any, device: str) -> dict[str, Any]:
    from loka.world.build import load_world

    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    unlearn = [m for m in args.unlearn.split(",") if m]
    out: dict[str, Any] = {"machine": machine(device), "preset": args.preset, "seeds": seeds,
                           "per_seed": {}, "attribution": {}, "methods": {}, "plant": {}}
    for seed in seeds:
        log(f"planted world seed {seed}")
        t0 = time.perf_counter()
        art = load_world(args.preset, seed, progress=False)
        log(f"  world ready ({time.perf_counter() - t0:.0f}s): {art.root}")
        out["per_seed"][seed] = run_seed(art, methods, unlearn, args.workers)
        if args.figures and seed == seeds[0]:
            figures(out["per_seed"][seed], art, Path(args.figures))
            out["figures"] = args.figures
    per = out["per_seed"]
    checks = [per[s]["plant"] for s in seeds]
    out["plant"] = {
        "took_every_seed": all(c["took"] for c in checks),
        "random_does_not_every_seed": all(c["random_does_not"] for c in checks),
        "forget_after": _summary([c["planted_ablated"]["forget_accuracy"] for c in checks], max),
        "retrain_forget": _summary([c["retrain"]["forget_accuracy"] for c in checks], max),
        "retain_vs_base": _summary([c["retain_vs_base"] for c in checks], min),
        "random_forget_min": _summary([c["random_forget_accuracy_min"] for c in checks], min),
        "leak_forget": _summary([c["leak"]["forget_accuracy"] for c in checks], max),
        "leak_heldout_template": _summary([c["leak"]["heldout_template_forget_accuracy"] for c in checks], max),
    }
    for m in methods:
        graded = [which for which in ("contrast", "forget", "forget_set")
                  if all(which in per[s]["attribution"][m] for s in seeds)]
        out["attribution"][m] = {
            f"{which}_{key}": _summary([per[s]["attribution"][m][which][key] for s in seeds], worse)
            for which in graded
            for key, worse in (("precision_at_k", min), ("average_precision", min),
                               ("random_precision_at_k", max), ("random_average_precision", max))
        } | {f"seconds{tag}": _summary([per[s]["attribution"][m][f"seconds{tag}"] for s in seeds], max)
             for tag in ("", *(["_forget_set"] if "forget_set" in graded else []))}
    if unlearn:
        for name in ["base", "retrain", *unlearn, ORACLE]:
            rows = {s: per[s]["methods"][name] for s in seeds}
            summary: dict[str, Any] = {short: _summary([_get(rows[s], key) for s in seeds], worse)
                                       for key, (short, worse) in COLUMNS.items()}
            checks_t = {s: targets(rows[s], per[s]["methods"]["base"], per[s]["methods"]["retrain"]) for s in seeds}
            summary["targets"] = {"per_seed": checks_t,
                                  "forget_and_retain_every_seed": all(
                                      checks_t[s]["forget"] and checks_t[s]["retain"] for s in seeds)}
            summary["errors"] = {s: rows[s].get("error") for s in seeds if rows[s].get("error")}
            out["methods"][name] = summary
    for s in seeds:
        per[s].pop("_rankings")
        per[s].pop("_joined")
    return out


def figures(result: dict[str, Any], art: Any, folder: Path) -> None:
    """``planted_map.png`` (answer key and each method's top-k on the layer x neuron map, ranked
    on the whole forget set where the world has passages, else on its facts) and
    ``pr_curves.png`` (precision-recall of each method's rankings, random floor)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    from loka.workflows.localization import planted_components, pr_curve

    folder.mkdir(parents=True, exist_ok=True)
    spec, planted = art.spec, planted_components(art.spec)
    n_layers, d_mlp = spec.model.n_layers, spec.model.d_mlp
    rankings, joined, grades = result["_rankings"], result["_joined"], result["attribution"]
    key = np.zeros((n_layers, d_mlp), dtype=int)
    for c in planted:
        key[c.layer, c.index] = 1
    panels = [("answer key: planted neurons", key)]
    for method in rankings:
        grid = key.copy()  # 0 unplanted, 1 planted missed, 2 planted found, 3 chosen but unplanted
        which = "forget_set" if method in joined else "contrast"
        for name in grades[method][which]["top_k"]:
            layer, n = name[1:].split(".N")
            grid[int(layer), int(n)] = 2 if key[int(layer), int(n)] else 3
        g = grades[method][which]
        ranked_on = "facts + passages" if method in joined else "facts"
        panels.append((f"{method}: top-{g['k']} by contrast on the forget {ranked_on}, precision "
                       f"{g['precision_at_k']:.2f}", grid))
    cmap = ListedColormap(["#f2f2f2", "#9e9e9e", "#2e7d32", "#c62828"])
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 0.55 * n_layers * len(panels) + 1.2), squeeze=False)
    for ax, (title, grid) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_yticks(range(n_layers), [f"L{i}" for i in range(n_layers)], fontsize=7)
        ax.set_xticks([])
    axes[-1, 0].set_xlabel(f"MLP neuron (0..{d_mlp - 1})  —  grey: planted, missed; green: planted, "
                           "found; red: chosen, not planted")
    fig.tight_layout()
    fig.savefig(folder / "planted_map.png", dpi=130)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, r) in enumerate(rankings.items()):
        curves = [("forget set", joined[method], "-")] if method in joined else []
        curves.append(("facts", r.scores("contrast"), "--" if curves else "-"))
        for label, scores, style in curves:
            which = "forget_set" if label == "forget set" else "contrast"
            precision, recall = pr_curve(scores, r.components, planted)
            ap = grades[method][which]["average_precision"]
            ax.plot(recall, precision, style, color=colours[i % len(colours)], label=f"{method} ({label}) AP {ap:.2f}")
    ax.axhline(len(planted) / (n_layers * d_mlp), color="k", lw=0.8, ls="--", label="random ranking")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"finding the {len(planted)} planted neurons (world seed {spec.seed})", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(folder / "pr_curves.png", dpi=130)
    plt.close(fig)


def markdown(out: dict[str, Any]) -> str:
    """The run's tables as markdown (``figures/localization/localization.md``)."""
    f3 = lambda x: "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)  # noqa: E731
    p, lines = out["plant"], []
    per_seed = {str(k): v for k, v in out["per_seed"].items()}  # int keys, or str read back from JSON
    lines.append(f"seeds {out['seeds']}; plant took every seed: {p['took_every_seed']}; random sets do not "
                 f"(every seed): {p['random_does_not_every_seed']}")
    for seed in out["seeds"]:
        c, w = per_seed[str(seed)]["plant"], per_seed[str(seed)]["world"]
        lines.append(
            f"- seed {seed}: build base {w.get('base_train_seconds')}s retrain {w.get('retrain_train_seconds')}s; "
            f"base forget {c['base']['forget_accuracy']} retain {c['base']['retain_accuracy']}; retrain forget "
            f"{c['retrain']['forget_accuracy']} retain {c['retrain']['retain_accuracy']}; planted ablated forget "
            f"{c['planted_ablated']['forget_accuracy']} retain {c['planted_ablated']['retain_accuracy']} "
            f"(retain/base {c['retain_vs_base']}); random-set forget min {c['random_forget_accuracy_min']} retain "
            f"mean {c['random_retain_accuracy_mean']}; leak {c['leak']}; took {c['took']} random_does_not "
            f"{c['random_does_not']}")
    mw = lambda a, key: f"{f3(a[key]['mean'])} ({f3(a[key]['worst'])})" if key in a else "-"  # noqa: E731
    lines += ["", "| method | P@k facts contrast mean (worst) | AP facts contrast mean (worst) | P@k forget set mean "
              "(worst) | AP forget set mean (worst) | P@k facts forget-only | AP facts forget-only | random P@k | "
              "random AP | seconds facts | seconds forget set |", "|---" * 11 + "|"]
    for m, a in out["attribution"].items():
        lines.append(f"| {m} | {mw(a, 'contrast_precision_at_k')} | {mw(a, 'contrast_average_precision')} | "
                     f"{mw(a, 'forget_set_precision_at_k')} | {mw(a, 'forget_set_average_precision')} | "
                     f"{f3(a['forget_precision_at_k']['mean'])} | {f3(a['forget_average_precision']['mean'])} | "
                     f"{f3(a['contrast_random_precision_at_k']['mean'])} | "
                     f"{f3(a['contrast_random_average_precision']['mean'])} | {f3(a['seconds']['mean'])} | "
                     f"{f3(a['seconds_forget_set']['mean']) if 'seconds_forget_set' in a else '-'} |")
    per = lambda a, key: " / ".join(f3(x) for x in a[key]["per_seed"]) if key in a else "-"  # noqa: E731
    lines += ["", "Per seed P@k (facts contrast / forget set): " + "; ".join(
        f"{m} {per(a, 'contrast_precision_at_k')}" + (f" | {per(a, 'forget_set_precision_at_k')}"
                                                     if "forget_set_precision_at_k" in a else "")
        for m, a in out["attribution"].items())]
    if out["methods"]:
        shorts = [short for short, _ in COLUMNS.values()]
        lines += ["", "| method (mean / worst) | " + " | ".join(shorts) + " | forget+retain targets every seed |",
                  "|---" * (len(shorts) + 2) + "|"]
        for name, m in out["methods"].items():
            lines.append(f"| {name} | " + " | ".join(f"{f3(m[s]['mean'])} / {f3(m[s]['worst'])}" for s in shorts)
                         + f" | {m['targets']['forget_and_retain_every_seed']} |")
    return "\n".join(lines) + "\n"


def render(out: dict[str, Any]) -> None:
    p = out["plant"]
    print(f"plant check on seeds {out['seeds']}: took on every seed {p['took_every_seed']}, random sets "
          f"do not {p['random_does_not_every_seed']}; forget after ablation {p['forget_after']['per_seed']} "
          f"(retrain {p['retrain_forget']['per_seed']}), retain/base {p['retain_vs_base']['per_seed']}, "
          f"leak {p['leak_forget']['per_seed']}")
    rows = [[m, a["contrast_precision_at_k"]["mean"], a["contrast_precision_at_k"]["worst"],
             a["contrast_average_precision"]["mean"], a["forget_precision_at_k"]["mean"],
             a["forget_average_precision"]["mean"],
             *([a["forget_set_precision_at_k"]["mean"], a["forget_set_precision_at_k"]["worst"],
                a["forget_set_average_precision"]["mean"]] if "forget_set_precision_at_k" in a else ["-"] * 3),
             a["contrast_random_precision_at_k"]["mean"], a["contrast_random_average_precision"]["mean"],
             a["seconds"]["mean"]]
            for m, a in out["attribution"].items()]
    print_table("attribution vs the answer key (facts: contrast / forget-only; forget set: facts + passages; "
                "mean over seeds)", ["method", "P@k", "P@k worst", "AP", "P@k fgt", "AP fgt", "P@k set",
                                     "P@k set worst", "AP set", "P@k rand", "AP rand", "s"], rows)
    if out["methods"]:
        shorts = [s for s, _ in COLUMNS.values()]
        rows = [[f"{name} ({which})"] + [m[s][which] for s in shorts]
                for name, m in out["methods"].items() for which in ("mean", "worst")]
        print_table(f"unlearning on the planted world, seeds {out['seeds']}", ["method", *shorts], rows)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.localization", __doc__)
    p.set_defaults(preset="planted")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=METHODS, help="attribution methods to grade")
    p.add_argument("--unlearn", default=UNLEARN, help="unlearning methods to verify ('' for none)")
    p.add_argument("--figures", default=None, help="folder for planted_map.png and pr_curves.png")
    p.add_argument("--markdown", default=None, help="write the tables as markdown to this file")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    from bench._common import setup

    device = setup(args)
    from loka.workflows.compare import check_settings

    for item in (m for m in args.unlearn.split(",") if "[" in m):  # a bad row fails now, not minutes in
        name, settings = variant(item)
        check_settings([name], {name: settings})
    out = run(args, device)
    code = finish(out, args.json, render)
    if args.markdown:
        Path(args.markdown).write_text(markdown(out))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
