"""Does the direction probe see the neighbours? What picks `loka-deep`'s steering direction, per fact.

    python -m bench.deep_probes [--json] [--threads 2] [--layer 6] [--directions 16] [--seeds 0,1,2]

Each try of the lookup stage steers the forget subjects' states towards the one of
``lookup_directions`` random directions whose push the seen retain facts' answers feel least (their
subject states moved a tenth of the way, `deep_lookup.PROBE_SHARE`; the mean log-prob of their
answer tokens, `deep_lookup.pushed_logp`). Which direction is picked decides where the edit spills
(BENCHMARKS.md screens 20-21: at block 6 on seed 0, fewer neurons or a heavier keep lose exactly
the same neighbours). Per seed, this takes the first try's candidates — the method's own, drawn by a
run of `loka-deep` stopped once they are probed — and scores every candidate with the same push on
every fact: the seen retain facts, `bench.deep_real`'s held-out neighbours and homonyms. Reported:
the candidates' probes on each set, which each set would pick, and Spearman's rank correlation of
the seen probe with the neighbours' and between halves of each set (subjects alternately
assigned): does the ranking the method sees carry over to subjects it does not see, or even to
the other half of its own? Base model only; no edit is kept.

Example:
    >>> set_probe(per_row, tokens, [0, 2])   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from bench._common import finish, log, machine, parser, print_table, setup


class _Probed(Exception):
    """Ends the run once every candidate of the first try has been probed."""


def candidates(model: Any, tok: Any, task: Any, seed: int, layer: int, directions: int,
               **settings: Any) -> tuple[list[float], list[Tensor]]:
    """The first try's candidate goals of `loka-deep` (``seed``, ``lookup_layer``, ``lookup_directions``,
    its other ``settings``) and the method's own probe of each (``pushed_logp`` on the seen retain
    facts), in draw order."""
    import loka.methods.localized.deep_lookup as lookup
    from loka.methods import unlearn

    probes: list[float] = []
    goals: list[Tensor] = []
    own = lookup.pushed_logp

    def spy(m: Any, rows: Any, where: Tensor, at: int, goal: Tensor, share: float) -> float:
        probes.append(own(m, rows, where, at, goal, share))
        goals.append(goal.detach().clone())
        if len(goals) == directions:
            raise _Probed
        return probes[-1]

    lookup.pushed_logp = spy  # `best_probed` reads the module's name at call time
    try:
        unlearn((copy.deepcopy(model), tok), task, "loka-deep", seed=seed, progress=False,
                **(settings | {"lookup_layer": layer, "lookup_directions": directions}))
    except _Probed:
        pass
    finally:
        lookup.pushed_logp = own
    if len(goals) != directions:
        raise RuntimeError(f"the lookup stage probed {len(goals)} directions, not {directions}")
    return probes, goals


@torch.no_grad()
def row_nll(model: Any, rows: Any, where: Tensor, layer: int, goal: Tensor, share: float) -> tuple[Tensor, Tensor]:
    """Per row, the summed NLL of its scored tokens and their count, with the states after block
    ``layer`` at ``where`` moved ``share`` of the way towards ``goal`` (`deep_lookup.pushed_logp`'s
    push, kept per row)."""
    from loka.methods.localized.deep_lookup import block_output_edited, push_towards
    from loka.methods.localized.deep_rows import logits_at

    with block_output_edited(model, layer, push_towards(where, goal, share)):
        nll = torch.nn.functional.cross_entropy(logits_at(model, rows), rows.ids[:, 1:][rows.score], reduction="none")
    owner = rows.score.nonzero()[:, 0]
    total = torch.zeros(len(rows), dtype=nll.dtype).index_add_(0, owner, nll)
    return total, torch.bincount(owner, minlength=len(rows)).to(nll.dtype)


def set_probe(total: Tensor, count: Tensor, pick: Sequence[int]) -> float:
    """The mean answer-token log-prob over the rows ``pick`` (what ``pushed_logp`` gives on them alone)."""
    index = torch.as_tensor(list(pick), dtype=torch.long)
    return -float(total[index].sum() / count[index].sum())


def halves(facts: Sequence[Any]) -> tuple[list[int], list[int]]:
    """Row indices of ``facts`` split by subject: sorted subjects alternately to the first half and the second."""
    first = set(sorted({f.subject for f in facts})[::2])
    return ([i for i, f in enumerate(facts) if f.subject in first],
            [i for i, f in enumerate(facts) if f.subject not in first])


def rho(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return round(float(spearmanr(a, b)[0]), 3)


def probe_seed(model: Any, tok: Any, data: Any, task: Any, seed: int, layer: int, directions: int) -> dict[str, Any]:
    """One seed's row (module doc)."""
    from bench.deep_real import HOMONYMS, neighbours
    from loka.methods.localized.deep_lookup import PROBE_SHARE
    from loka.methods.localized.deep_rows import subject_rows

    own, goals = candidates(model, tok, task, seed, layer, directions)
    ev = list(data.facts[("retain_eval", "train")]) + list(data.facts.get(("retain_eval", "heldout"), ()))
    groups = {"seen": list(task.retain), "neighbours": neighbours(ev), "homonyms": [f for f in ev if f.subject in HOMONYMS]}
    per_set: dict[str, list[tuple[Tensor, Tensor]]] = {}
    for name, facts in groups.items():
        rows, where = subject_rows(tok, facts)
        per_set[name] = [row_nll(model, rows, where & rows.mask.bool(), layer, g, PROBE_SHARE) for g in goals]
    probe = {name: [set_probe(t, c, range(len(groups[name]))) for t, c in got] for name, got in per_set.items()}
    split = {name: [[set_probe(t, c, h) for t, c in per_set[name]] for h in halves(groups[name])]
             for name in ("seen", "neighbours")}
    best = lambda xs: max(range(len(xs)), key=xs.__getitem__)  # noqa: E731
    return {"seed": seed, "layer": layer, "directions": directions,
            "facts": {name: len(facts) for name, facts in groups.items()},
            "method_probe": [round(p, 4) for p in own],
            "probe": {name: [round(p, 4) for p in ps] for name, ps in probe.items()},
            "pick": {"method": best(own), **{name: best(ps) for name, ps in probe.items()}},
            "rho_seen_neighbours": rho(probe["seen"], probe["neighbours"]),
            "rho_seen_homonyms": rho(probe["seen"], probe["homonyms"]),
            "rho_seen_halves": rho(*split["seen"]), "rho_neighbours_halves": rho(*split["neighbours"])}


def _render(out: dict[str, Any]) -> None:
    print_table(["seed", "picks: method / seen / neighbours", "rho seen~neighbours", "rho seen~homonyms",
                 "rho seen halves", "rho neighbour halves"],
                [[r["seed"], f"{r['pick']['method']} / {r['pick']['seen']} / {r['pick']['neighbours']}",
                  r["rho_seen_neighbours"], r["rho_seen_homonyms"], r["rho_seen_halves"], r["rho_neighbours_halves"]]
                 for r in out["rows"]])


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.deep_probes", __doc__)
    p.add_argument("--layer", type=int, default=8, help="lookup_layer (default: 8, the method's)")
    p.add_argument("--directions", type=int, default=8, help="lookup_directions (default: 8, the method's)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated method seeds (default: 0,1,2)")
    args = p.parse_args(argv)
    device = setup(args)
    from bench.real import request
    from loka.io.models import load_hf

    data, task, model = request()
    hf, tok = load_hf(model)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows.append(probe_seed(hf, tok, data, task, seed, args.layer, args.directions))
        log(f"seed {seed}: {json.dumps(rows[-1])}")
    return finish({"machine": machine(device), "rows": rows}, args.json, _render)


if __name__ == "__main__":
    raise SystemExit(main())
