"""Could a null-space edit spare the neighbours? The preserved text's subspace, seen from the names.

    python -m bench.deep_subspace [--json] [--threads 2] [--texts 48] [--layer N]

AlphaEdit (Fang et al. 2024, arXiv 2410.02355) keeps what a model knows by projecting an edit onto
the null space of the inputs it must preserve: a weight row that changes only along directions
those inputs do not use leaves their outputs where they were. For `loka-deep`'s lookup neurons
on SmolLM2 that spares the unseen neighbours only if their subject tokens lie in the preserved
inputs' subspace while the forget subjects' do not. Per block ``0..N`` (``--layer``, default
the lookup stage's ``lookup_layer``, 8; a negative one counts from the top), for
the inputs of the MLP's input rows (``up_proj``, the normed residual stream) and of its output
columns (``down_proj``, the neuron activations), over preserved text (``--texts`` texts the base
model writes itself, `deep_selftext`, plus every token of the retain facts the method sees):

- the rank of the top-energy subspace holding 90 / 99 / 99.9 % of the preserved inputs' energy;
- for the forget facts' subject tokens, the neighbours' (`bench.deep_real`'s held-out
  same-relation subjects) and the seen retain facts', the mean share of each token's squared norm
  *outside* that subspace (what a null-space edit could still change).

Forget and neighbour shares alike: an edit confined to where the neighbours are spared is as
confined where the forget subjects are. Base model only; no edit is made.

Example:
    >>> outside_share(preserved_basis(keys), queries, 0.99)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from bench._common import finish, log, machine, parser, print_table, setup

ENERGIES = (0.9, 0.99, 0.999)


def preserved_basis(keys: Tensor) -> tuple[Tensor, Tensor]:
    """The eigenvectors of ``keys``' (``[n, d]``) second moment, largest first, and the cumulative
    share of the energy they hold: what `outside_share` reads, computed once per module."""
    if not len(keys) or not bool(keys.abs().sum() > 0):
        raise ValueError("the preserved inputs have no energy")
    values, vectors = torch.linalg.eigh(keys.T.double() @ keys.double() / len(keys))
    values, vectors = values.flip(0), vectors.flip(1)
    return values.cumsum(0) / values.sum(), vectors


def outside_share(basis: tuple[Tensor, Tensor], queries: Tensor, energy: float) -> tuple[int, float]:
    """The rank ``r`` of the top-energy subspace holding ``energy`` of the preserved inputs
    (`preserved_basis`), and the mean over ``queries`` (``[m, d]``) of the share of each one's
    squared norm outside it."""
    if not len(queries):
        raise ValueError("no query tokens: no subject was found in its facts")
    cum, vectors = basis
    rank = min(int((cum < energy).sum()) + 1, len(cum))
    q = queries.double()
    outside = (q @ vectors[:, rank:]).pow(2).sum(-1) / q.pow(2).sum(-1).clamp_min(1e-30)
    return rank, float(outside.mean())


def module_inputs(model: Any, rows: Any, where: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
    """Per module name, its inputs at the positions ``where`` marks ``[n, d_in]``."""
    modules, got = dict(model.named_modules()), {}
    hooks = [modules[n].register_forward_pre_hook(lambda m, i, n=n: got.__setitem__(n, i[0].detach()))
             for n in names]
    try:
        with torch.no_grad():
            model(input_ids=rows.ids, attention_mask=rows.mask)
    finally:
        for h in hooks:
            h.remove()
    return {n: got[n][where[:, : got[n].shape[1]]].float() for n in names}


def subspace(model: Any, tok: Any, task: Any, others: Sequence[Any], texts: int, layer: int) -> list[dict[str, Any]]:
    """The module doc's table, one row per (block, module) of blocks ``0..layer``."""
    from attribution.data import prefix_ids
    from loka.methods.localized.deep_lookup import _block_names
    from loka.methods.localized.deep_rows import build_rows, fact_rows, subject_rows
    from loka.methods.localized.deep_selftext import avoid_words, self_texts

    forget, retain = list(task.forget), list(task.retain)
    downs = _block_names(model)[0]
    downs = downs[: layer % len(downs) + 1]
    names = [n for d in downs for n in (d.replace("down_proj", "up_proj"), d)]

    def subjects(facts: Sequence[Any]) -> dict[str, Tensor]:
        return module_inputs(model, *subject_rows(tok, facts), names)

    g_rows = build_rows(tok, self_texts(model, tok, texts, avoid=avoid_words(forget, retain), seed=0))[0]
    r_rows = fact_rows(tok, [f.prompt for f in retain], [f.answer for f in retain])[0]
    keys: dict[str, list[Tensor]] = {n: [] for n in names}
    for rows in (g_rows, r_rows):
        where = rows.mask.bool()
        where[:, :len(prefix_ids(tok))] = False  # BOS
        for n, x in module_inputs(model, rows, where, names).items():
            keys[n].append(x)
    sets = {"forget": subjects(forget), "neighbours": subjects(others), "retain_seen": subjects(retain)}
    out = []
    for n in names:
        k = torch.cat(keys[n])
        basis = preserved_basis(k)
        row: dict[str, Any] = {"block": int(n.split(".layers.")[1].split(".")[0]), "module": n.rsplit(".", 1)[1],
                               "keys": len(k)}
        for e in ENERGIES:
            for name, got in sets.items():
                rank, share = outside_share(basis, got[n], e)
                row[f"rank_{e}"], row[f"{name}_{e}"] = rank, round(share, 4)
        out.append(row)
        log(f"{n}: {json.dumps(row)}")
    return out


def _render(out: dict[str, Any]) -> None:
    e = "0.99"
    print_table(f"share of the subject tokens' energy outside the preserved text's {e} subspace (bench.deep_subspace)",
                ("block", "module", "rank", "forget", "neighbours", "retain seen"),
                [(r["block"], r["module"], r[f"rank_{e}"], r[f"forget_{e}"], r[f"neighbours_{e}"],
                  r[f"retain_seen_{e}"]) for r in out["rows"]])


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.deep_subspace", __doc__)
    from loka.methods.localized.deep import Config

    layer = Config().lookup_layer
    p.add_argument("--texts", type=int, default=48, help="self-written preserved texts (default: 48)")
    p.add_argument("--layer", type=int, default=layer,
                   help=f"the last block measured (default: loka-deep's lookup_layer, {layer}; negative: from the top)")
    args = p.parse_args(argv)
    device = setup(args)
    from bench.deep_real import neighbours
    from bench.real import request
    from loka.io.models import load_hf

    data, task, model = request()
    hf, tok = load_hf(model)
    n = int(hf.config.num_hidden_layers)
    if not -n <= args.layer < n:
        p.error(f"--layer {args.layer}: this model has blocks 0..{n - 1} (a negative one counts from the top)")
    rows = subspace(hf, tok, task, neighbours(data.facts[("retain_eval", "train")]), args.texts, args.layer)
    return finish({"machine": machine(device), "texts": args.texts, "layer": args.layer, "rows": rows}, args.json, _render)


if __name__ == "__main__":
    raise SystemExit(main())
