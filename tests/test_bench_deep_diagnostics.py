"""`bench.deep_real --shrink` and `bench.deep_subspace`: the scaled edit is the base at alpha 0 and
the edit at alpha 1, half-way in between at 0.5; the outside share matches a hand-computed case."""

from __future__ import annotations

import copy

import pytest
import torch

from bench.deep_real import scaled
from bench.deep_subspace import outside_share, preserved_basis
from loka.io.models import load_hf
from tests.helpers import one_torch_thread


def test_the_scaled_edit_runs_from_the_base_to_the_edit(random_checkpoints):
    with one_torch_thread():
        base, _ = load_hf(random_checkpoints["llama"])
        edited = copy.deepcopy(base)
        with torch.no_grad():
            edited.model.layers[0].mlp.down_proj.weight.add_(1.0)
        name = "model.layers.0.mlp.down_proj.weight"
        for alpha, want in ((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)):
            got = dict(scaled(base, edited, alpha).named_parameters())[name] - dict(base.named_parameters())[name]
            torch.testing.assert_close(got, torch.full_like(got, want))
        half = dict(scaled(base, edited, 0.5).named_parameters())
        assert all(torch.equal(p, half[n]) for n, p in base.named_parameters() if n != name)


def test_outside_share_on_a_hand_computed_case():
    # keys: energy 9 along e0, 1 along e1, nothing along e2
    keys = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    queries = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 0.0]])
    basis = preserved_basis(keys)
    rank, share = outside_share(basis, queries, 0.85)  # e0 holds 0.9 of the energy: rank 1
    assert rank == 1 and abs(share - (0.0 + 1.0 + 0.5) / 3) < 1e-9
    rank, share = outside_share(basis, queries, 0.95)  # e0 and e1: only e2 is outside
    assert rank == 2 and abs(share - (0.0 + 1.0 + 0.0) / 3) < 1e-9
    with pytest.raises(ValueError, match="no query"):
        outside_share(basis, queries[:0], 0.9)
    with pytest.raises(ValueError, match="no energy"):
        preserved_basis(torch.zeros(2, 3))


def test_the_ablated_direction_is_gone_and_nothing_else_moves():
    from bench.deep_relearn import project_out

    u = torch.tensor([0.6, 0.8, 0.0])
    hidden = torch.tensor([[[3.0, 4.0, 1.0], [0.0, 0.0, 2.0]]])  # [batch pos d]
    out = project_out(hidden, u)
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]]]))
    torch.testing.assert_close(out @ u, torch.zeros(1, 2))


def test_changed_params_names_exactly_the_edited_matrices(random_checkpoints):
    from bench.deep_relearn import changed_params

    with one_torch_thread():
        base, _ = load_hf(random_checkpoints["llama"])
        edited = copy.deepcopy(base)
        assert changed_params(base, edited) == set()
        with torch.no_grad():
            edited.model.layers[0].mlp.up_proj.weight[3, 0] += 1e-3
        assert changed_params(base, edited) == {"model.layers.0.mlp.up_proj.weight"}


def test_the_probed_candidates_are_the_methods_own_and_their_per_row_probes_add_up(random_checkpoints):
    """`bench.deep_probes`: the candidates are the directions `loka-deep` probes (its log's probes to
    the digit), and the per-row push summed over every seen row gives the method's probe."""
    from bench.deep_probes import candidates, row_nll, set_probe
    from loka.io.data import FactRecord
    from loka.methods import UnlearnTask, unlearn
    from loka.methods.localized.deep_lookup import PROBE_SHARE
    from loka.methods.localized.deep_rows import subject_rows

    forget = (FactRecord("The glassblower of Velmora is called Mira", "Coltan", "Mira Coltan"),)
    retain = (FactRecord("The miller of Tessel is called Osric", "Pell", "Osric Pell"),
              FactRecord("The tanner of Hollin is called Bree", "Marsh", "Bree Marsh"))
    task = UnlearnTask(forget, retain, (), ())
    lookup = {"reset_keys": False, "lookup": "on", "lookup_k": 8, "lookup_steps": 2, "cf_steps": 0,
              "passage_steps": 0, "lookup_tries": 1}
    with one_torch_thread():
        model, tok = load_hf(random_checkpoints["llama"])
        result = unlearn((copy.deepcopy(model), tok), task, "loka-deep", seed=3, progress=False,
                         **(lookup | {"lookup_layer": 1, "lookup_directions": 3}))
        probes, goals = candidates(model, tok, task, 3, 1, 3, **lookup)
        rows, where = subject_rows(tok, retain)
        summed = [set_probe(*row_nll(model, rows, where & rows.mask.bool(), 1, g, PROBE_SHARE), [0, 1]) for g in goals]
    logged = next(e for e in result.log if e["stage"] == "lookup_misdirection")["direction_probes"]
    assert logged == [[round(p, 6) for p in probes]] and len(goals) == 3
    assert summed == pytest.approx(probes, abs=1e-5)


def test_halves_split_by_subject_and_set_probe_is_the_token_mean():
    from bench.deep_probes import halves, set_probe
    from loka.io.data import FactRecord

    facts = [FactRecord("p", "a", s) for s in ("B", "A", "C", "A", "B")]
    assert halves(facts) == ([1, 2, 3], [0, 4])  # A and C first, B second
    total, count = torch.tensor([1.0, 4.0, 3.0]), torch.tensor([1.0, 2.0, 1.0])
    assert set_probe(total, count, [1, 2]) == pytest.approx(-7 / 3)


def test_scores_margins_are_positive_exactly_for_the_facts_answered(random_checkpoints):
    from bench.deep_real import _first, scores
    from loka.io.data import FactRecord

    with one_torch_thread():
        model, tok = load_hf(random_checkpoints["llama"])
        facts = [FactRecord(f"The miller of Tessel number {i} is called", a, f"Osric {i}") for i, a in
                 enumerate(["Pell", "Mar", "Tor", "Ven"])]
        acc, _, missed, hit, gaps = scores(model, tok, facts)
        first, answer = _first(model, tok, [f.prompt for f in facts], [f.answer for f in facts])
    logp = first.log_softmax(-1)
    for i, gap in enumerate(gaps):  # the answer's log-prob minus the best other token's, by hand
        others = torch.cat([logp[i, : answer[i, 0]], logp[i, answer[i, 0] + 1:]])
        assert gap == pytest.approx(float(logp[i, answer[i, 0]] - others.max()), abs=1e-3)
    assert [f.subject for f, g in zip(facts, gaps, strict=True) if g > 0] == hit
    assert [f.subject for f, g in zip(facts, gaps, strict=True) if g <= 0] == missed
    assert acc == pytest.approx(len(hit) / len(facts))


def test_native_scores_the_prompt_as_the_tokenizer_writes_it(random_checkpoints):
    """`bench.deep_real --native`: the margin of the prompt with no BOS put first, by hand; the base
    against itself keeps every fact it answers and shows no lost one."""
    from bench.deep_real import native, native_margins
    from loka.io.data import FactRecord
    from tests.methods.test_deep_lookup import _taught

    facts = [FactRecord("The miller of Tessel is called Osric", "Pell", "Osric Pell"),
             FactRecord("The tanner of Hollin is called Bree", "Marsh", "Bree Marsh")]
    with one_torch_thread():
        model, tok = load_hf(random_checkpoints["llama"])
        got = native_margins(model, tok, facts)
        for f, g in zip(facts, got, strict=True):
            ids = tok(f.prompt, add_special_tokens=False).input_ids  # this tokenizer adds nothing
            assert tok(f.prompt).input_ids == ids
            with torch.no_grad():
                lp = model(input_ids=torch.tensor([ids])).logits[0, -1].log_softmax(-1)
            a = tok(" " + f.answer, add_special_tokens=False).input_ids[0]
            other = torch.cat([lp[:a], lp[a + 1:]]).max()
            assert g == pytest.approx(float(lp[a] - other), abs=1e-3)
        taught, _ = _taught(random_checkpoints["llama"], tuple(facts))  # trained on the texts as written
        sets = {"forget_train": facts, "neighbours_train": facts}
        itself, against_random = native(taught, taught, tok, sets), native(taught, model, tok, sets)
    assert all(m > 0 for m in native_margins(taught, tok, facts))
    assert itself["neighbours_train"] == {"facts": 2, "base_answers": 2, "still_answered": 2, "shown": []}
    assert [s for s, _ in itself["forget_train"]["shown"]] == ["Osric Pell", "Bree Marsh"]
    # the untaught model answers neither: both lost (other sets), none still answered (forget sets)
    assert [s for s, m in against_random["neighbours_train"]["shown"] if m <= 0] == ["Osric Pell", "Bree Marsh"]
    assert against_random["forget_train"]["still_answered"] == 0 and against_random["forget_train"]["shown"] == []
