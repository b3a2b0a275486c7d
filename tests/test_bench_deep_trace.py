"""`bench.deep_trace`: its patches put exactly the given states after the given block, so a
query patched everywhere with a twin's states is the twin; an unedited model moved nowhere."""

from __future__ import annotations

import copy

import torch

from bench.deep_trace import _query, margin, states_after, trace_one
from loka.io.models import load_hf
from tests.helpers import one_torch_thread

QUERY, SUBJECT, TWIN = "the miller of tessel works at", "miller", "baker"


def test_patching_every_position_with_a_twins_states_gives_the_twins_answer(random_checkpoints):
    with one_torch_thread():
        model, tok = load_hf(random_checkpoints["llama"])
        rows, twin_rows = _query(tok, QUERY, SUBJECT)[0], _query(tok, QUERY.replace(SUBJECT, TWIN), TWIN)[0]
        ids, twin = rows.ids[0], twin_rows.ids[0]
        assert len(ids) == len(twin) and not torch.equal(ids, twin)
        answer = int(ids[3])
        own, other = states_after(model, rows, 0), states_after(model, twin_rows, 0)
        assert margin(model, ids, answer, 0, {p: own[p] for p in range(len(ids))}) == margin(model, ids, answer)
        patched = margin(model, ids, answer, 0, {p: other[p] for p in range(len(ids))})
        assert patched == margin(model, twin, answer) != margin(model, ids, answer)


def test_trace_of_an_unedited_model_moved_nothing_and_an_edit_shows(random_checkpoints):
    with one_torch_thread():
        model, tok = load_hf(random_checkpoints["llama"])
        same = trace_one(model, model, tok, QUERY, SUBJECT, "tessel", layer=1, stranger=SUBJECT)
        assert set(same["moved"]) == {0.0} and same["margin_edited"] == same["margin_base"]
        # the stranger is the subject itself: the words after it get their own states back
        assert same["after_stranger"] == same["margin_base"]
        edited = copy.deepcopy(model)
        with torch.no_grad():
            edited.model.layers[0].mlp.down_proj.weight.mul_(3.0)
        moved = trace_one(model, edited, tok, QUERY, SUBJECT, "tessel", layer=1)
        assert moved["moved_name"] > 0 and moved["moved_after"] > 0 and moved["margin_edited"] != moved["margin_base"]
