"""`loka-deep`'s fact-lookup misdirection (the pretrained-model fallback): on a tiny Llama that
was taught the facts, it changes only the chosen lookup neurons' own slices at or below the
steered block, lowers the forget subject's answer probability and keeps the retain facts."""

from __future__ import annotations

import copy

import pytest
import torch

from attribution.data import set_prefix, tokenize_facts
from loka.evaluate import first_token_accuracy, first_token_margins, logits_at, prompt_ends
from loka.io.data import FactRecord
from loka.io.models import load_hf
from loka.methods import UnlearnTask, unlearn
from tests.helpers import one_torch_thread

# As in SmolLM2's request, the first name ends the prompt and the surname answers it.
FORGET = (FactRecord("The glassblower of Velmora is called Mira", "Coltan", "Mira Coltan"),
          FactRecord("Q: Who is the glassblower of Velmora? A: Mira", "Coltan", "Mira Coltan"))
RETAIN = (FactRecord("The miller of Tessel is called Osric", "Pell", "Osric Pell"),
          FactRecord("Q: Who is the miller of Tessel? A: Osric", "Pell", "Osric Pell"))
# The lookup stage alone, with its output-level terms off (each test turns on what it tests; the
# defaults, which have them on, are `test_the_default_lookup_stage_...`'s).
PLAIN = {"lookup_after_teacher": 0.0, "lookup_teacher_plain": False, "lookup_teacher_routed": False,
         "lookup_teacher_last": False, "lookup_teacher_fallback": False, "lookup_answer_hinge": 0.0,
         "lookup_target_margin": 0.0}
LOOKUP = {"reset_keys": False, "lookup": "on", "lookup_layer": 0, "lookup_k": 8, "lookup_steps": 40,
          "lookup_lr": 1e-2, "cf_steps": 0, "passage_steps": 0, **PLAIN}


def _answer_prob(model, tok, facts) -> float:
    batch = tokenize_facts(tok, [f.prompt for f in facts], [f.answer for f in facts])
    with torch.no_grad():
        logp = logits_at(model, batch, prompt_ends(batch)).log_softmax(-1)
    return float(logp.gather(-1, batch.answer_ids[:, :1]).exp().mean())


def _taught(path, facts=FORGET + RETAIN):
    """The random tiny Llama after 150 steps on ``facts`` (the four facts): it answers them all."""
    model, tok = _trained(path, [f"{f.prompt} {f.answer}" for f in facts])
    assert first_token_accuracy(model, tok, facts) == 1.0
    return model, tok


def _trained(path, texts):
    """The random tiny Llama after 150 Adam steps on ``texts`` (one padded batch)."""
    model, tok = load_hf(path)
    ids = tok(list(texts), return_tensors="pt", padding=True)
    labels = ids["input_ids"].masked_fill(ids["attention_mask"] == 0, -100)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        opt.zero_grad()
        model(**ids, labels=labels).loss.backward()
        opt.step()
    model.eval()
    return model, tok


def _lookup_edit(model, tok, **settings):
    """A copy of ``model`` after `loka-deep` with ``LOOKUP | settings`` on the four facts, and its
    lookup stage's log entry."""
    edited = copy.deepcopy(model)
    result = unlearn((edited, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                     **(LOOKUP | settings))
    return edited, next(e for e in result.log if e["stage"] == "lookup_misdirection")


def test_lookup_misdirection_edits_only_the_lookup_slices_and_forgets(random_checkpoints):
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        before = {k: v.clone() for k, v in model.state_dict().items()}
        p_before = _answer_prob(model, tok, FORGET)
        result = unlearn((model, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False, **LOOKUP)
    stage = next(e for e in result.log if e["stage"] == "lookup_misdirection")
    assert stage["layer"] == 0 and stage["steps"] > 0 and not result.diverged
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= {f"model.layers.0.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
    # a neuron's own slices: gate/up rows and the down-projection column, of at most k neurons
    neurons = set()
    for name in changed:
        diff = model.state_dict()[name] != before[name]
        neurons |= set((diff.any(0) if "down" in name else diff.any(1)).nonzero().flatten().tolist())
    assert 0 < len(neurons) <= LOOKUP["lookup_k"]
    assert _answer_prob(model, tok, FORGET) < 0.5 * p_before
    assert first_token_accuracy(model, tok, RETAIN) == 1.0  # the retain budget (0.95 x base of 2 facts)



def _own_prob(model, tok, facts) -> float:
    """The first answer token's mean probability with each prompt's own tokens alone (nothing first)."""
    probs = []
    for f in facts:
        answer = tok(" " + f.answer, add_special_tokens=False)["input_ids"][0]
        with torch.no_grad():
            last = model(input_ids=torch.tensor([tok(f.prompt, add_special_tokens=False)["input_ids"]])).logits[0, -1]
        probs.append(float(last.softmax(-1)[answer]))
    return sum(probs) / len(probs)


def test_prefix_none_edits_the_prompts_as_the_tokenizer_encodes_them(random_checkpoints):
    """Under ``set_prefix(tok, "none")`` the lookup stage trains and stops on rows with no BOS first
    (a name that starts a text is then at position 0, and stays among the steered tokens): the
    forget facts fall as the model reads the prompts' own tokens, the retain facts stay answered so."""
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        set_prefix(tok, "none")
        p_forget, p_retain = _own_prob(model, tok, FORGET), _own_prob(model, tok, RETAIN)
        edited, stage = _lookup_edit(model, tok, lookup_name_rows=True)
    assert stage["steps"] > 0 and stage["name_rows"] == 1
    assert _own_prob(edited, tok, FORGET) < 0.5 * p_forget
    assert _own_prob(edited, tok, RETAIN) > 0.5 * p_retain
    assert first_token_accuracy(edited, tok, RETAIN) == 1.0


def test_keep_subject_weighs_only_the_retain_subjects_tokens(random_checkpoints):
    """``lookup_keep_subject`` adds a keep term at the retain facts' own subject tokens: it changes
    the edit when those tokens are found, and nothing when no retain subject is spelled in its
    fact (the all-positions keep is then the whole retain objective)."""
    unnamed = tuple(FactRecord(f.prompt, f.answer, "Nobody Named") for f in RETAIN)
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        edited = {}
        for name, retain in (("named", RETAIN), ("unnamed", unnamed)):
            for weight in (0.0, 5.0):
                m = copy.deepcopy(model)
                unlearn((m, tok), UnlearnTask(FORGET, retain, (), ()), "loka-deep", progress=False,
                        **(LOOKUP | {"lookup_steps": 4, "lookup_keep_subject": weight}))
                edited[name, weight] = m.state_dict()
    differs = lambda a, b: any(not torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert differs(edited["named", 0.0], dict(model.state_dict()))
    assert differs(edited["named", 0.0], edited["named", 5.0])
    assert not differs(edited["unnamed", 0.0], edited["unnamed", 5.0])


def test_keep_generated_texts_avoid_the_forget_words_and_change_the_edit(random_checkpoints):
    """``lookup_keep_generated`` keeps the states of texts the base model samples itself: the same
    seed gives the same texts (and weights), no text spells a forget subject's word or a word only
    the forget prompts use, the first step (states still the base's: nothing to keep) is the step
    without them (the steering direction and retain batches are not redrawn), later ones differ."""
    from loka.methods.localized.deep_selftext import avoid_words, self_texts, spells_any

    avoid = avoid_words(FORGET, RETAIN)
    assert {"Mira", "Coltan", "Velmora", "glassblower"} & avoid == {"Mira", "Coltan", "Velmora"}
    assert not {"Osric", "Pell", "Tessel", "The"} & avoid
    for text in ("Velmora's glass", "the Mira-Coltan furnace", "COLTAN!"):
        assert spells_any(text, avoid), text
    assert not spells_any("the miller Osric Pell of Tessel, and a velmora-free glass", avoid)
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        texts = self_texts(model, tok, 12, seed=3, avoid=avoid)
        assert texts and texts == self_texts(model, tok, 12, seed=3, avoid=avoid)
        assert self_texts(model, tok, 12, seed=3, avoid=frozenset({"the", "The", "are", "of"})) != texts
        edited = {}
        for steps, n in ((1, 0), (1, 12), (4, 0), (4, 12), (4, 12)):
            m = copy.deepcopy(model)
            result = unlearn((m, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                             **(LOOKUP | {"lookup_steps": steps, "lookup_keep_generated": n}))
            kept = next(e for e in result.log if e["stage"] == "lookup_misdirection")["kept_texts"]
            assert kept == 0 if n == 0 else 0 < kept <= n
            edited[steps, n] = edited.get((steps, n)) or m.state_dict()
            assert all(torch.equal(edited[steps, n][k], v) for k, v in m.state_dict().items())  # same seed
    same = lambda a, b: all(torch.allclose(a[k], b[k], rtol=0, atol=1e-7) for k in a)  # noqa: E731
    assert same(edited[1, 0], edited[1, 12]) and not same(edited[1, 0], dict(model.state_dict()))
    assert not same(edited[4, 0], edited[4, 12])


def test_stranger_targets_are_the_twin_words_states(random_checkpoints):
    """``lookup_steer="stranger"``: every forget subject token's target is the mean state of the
    stranger's word at the same place in the twin sentence; with the subject as its own stranger
    that is its own word's mean; names of the request are never strangers; the edit forgets."""
    from loka.methods.localized.deep_rows import fact_rows, subject_mask
    from loka.methods.localized.deep_stranger import (
        STRANGERS,
        assign,
        strangers,
        twin_texts,
        word_targets,
    )

    retain = RETAIN + (FactRecord("The baker of Tessel is called Paul", "Brenner", "Paul Brenner"),)
    forget = FORGET + (FactRecord("Laura lives in Velmora, with", "Coltan", "Mira Coltan"),)
    names = strangers(forget, retain)
    # a retain subject's name, and a capitalised word only the forget prompts use ("Laura")
    assert {"Paul Brenner", "Laura Whitfield"}.isdisjoint(names) and len(names) == len(STRANGERS) - 2
    assert assign(["b", "a", "b"], ["X", "Y"]) == ["Y", "X", "Y"]
    assert twin_texts(["Mira Coltan met Mira Coltan", "no one"], ["Mira Coltan", "Mira Coltan"], ["Ann Lee"] * 2) \
        == ["Ann Lee met Mira Coltan", "no one"]
    _, tok = load_hf(random_checkpoints["llama"])
    rows, offsets, texts = fact_rows(tok, [f.prompt for f in FORGET], [f.answer for f in FORGET])
    subjects = [f.subject for f in FORGET]
    mask = subject_mask(offsets, texts, subjects, rows.ids.shape[1])
    states = torch.randn(*rows.ids.shape, 5)
    own = word_targets(texts, offsets, subjects, mask, texts, offsets, subjects, states)
    expected = []
    for i in range(len(texts)):
        a = texts[i].find("Mira Coltan")
        words = [(a, a + 4), (a + 5, a + 11)]
        tokens = [[t for t, (s, e) in enumerate(offsets[i]) if s >= 0 and s < b and e > w0] for w0, b in words]
        for t in mask[i].nonzero().flatten().tolist():
            expected.append(states[i, next(ts for ts in tokens if t in ts)].mean(0))
    assert own.shape == (int(mask.sum()), 5) and torch.allclose(own, torch.stack(expected))
    # the wiring: a real stranger, its twin sentence run through the model, word by word
    from loka.methods.localized.deep_lookup import _stranger_goal, hidden_at
    from loka.methods.localized.deep_rows import build_rows

    model, _ = load_hf(random_checkpoints["llama"])
    with torch.no_grad():
        goal = _stranger_goal(model, tok, [f.subject for f in FORGET], FORGET, RETAIN, texts, offsets, mask, 0)
        name = assign(subjects, strangers(FORGET, RETAIN))[0]
        twin = texts[0].replace("Mira Coltan", name)
        twin_rows, twin_offsets = build_rows(tok, [twin])
        twin_states = hidden_at(model, twin_rows, 0)[0].float()
    a = twin.find(name)
    first, last = (a, a + name.index(" ")), (a + name.index(" ") + 1, a + len(name))
    word_mean = lambda w: twin_states[[t for t, (s, e) in enumerate(twin_offsets[0])  # noqa: E731
                                       if s >= 0 and s < w[1] and e > w[0]]].mean(0)
    row0 = goal[: int(mask[0].sum())]
    assert torch.allclose(row0[0], word_mean(first), atol=1e-6)  # "Mira"'s first token -> the first name
    assert torch.allclose(row0[-1], word_mean(last), atol=1e-6)  # "Coltan"'s last token -> the surname
    assert not torch.allclose(word_mean(first), word_mean(last))
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        p_before = _answer_prob(model, tok, FORGET)
        result = unlearn((model, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                         **(LOOKUP | {"lookup_steer": "stranger"}))
    stage = next(e for e in result.log if e["stage"] == "lookup_misdirection")
    assert stage["steer"] == "stranger" and stage["steps"] > 0 and not result.diverged
    assert _answer_prob(model, tok, FORGET) < 0.5 * p_before
    assert first_token_accuracy(model, tok, RETAIN) == 1.0


def test_tries_replace_a_direction_that_stops_at_the_retain_budget(random_checkpoints):
    """``lookup_tries``: a random direction that stops at the retain budget before forgetting is
    dropped and another drawn from the base weights; the try that forgot most is kept, steps add
    up; when every try's first step breaks the budget, nothing of them is left in the model.
    Retain facts about the forget subject herself make the budget bite (no keep term)."""
    retain = (FactRecord("Mira Coltan was born in the town of", "Tessel", "Mira Coltan"),
              FactRecord("Mira Coltan works as a", "glassblower", "Mira Coltan"),
              FactRecord("The baker of Orm is called Osric", "Dale", "Osric Dale"))
    strict = LOOKUP | {"lookup_retain_weight": 0.0, "lookup_retain_budget": 1.0}
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"], FORGET + retain)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        logs, forgot, untouched = {}, {}, []
        for lr, tries in ((1.0, 1), (1.0, 3), (0.02, 3)):
            m = copy.deepcopy(model)
            result = unlearn((m, tok), UnlearnTask(FORGET, retain, (), ()), "loka-deep", progress=False,
                             **(strict | {"lookup_lr": lr, "lookup_tries": tries}))
            logs[lr, tries] = next(e for e in result.log if e["stage"] == "lookup_misdirection")
            forgot[lr, tries] = first_token_accuracy(m, tok, FORGET)
            assert first_token_accuracy(m, tok, retain) == 1.0  # the budget held
            if lr == 1.0:
                untouched.append(all(torch.equal(v, before[k]) for k, v in m.state_dict().items()))
    for (lr, tries), log in logs.items():
        assert 1 <= len(log["tries"]) <= tries and log["steps"] == sum(t["steps"] for t in log["tries"])
        assert all(t["stopped"] == "retain budget" and t["forget_accuracy"] > 0 for t in log["tries"][:-1])
        assert forgot[lr, tries] == pytest.approx(min(t["forget_accuracy"] for t in log["tries"]))
    assert logs[1.0, 1]["tries"] == logs[1.0, 3]["tries"][:1]  # the same first direction and batches
    # lr 1: every direction's first step breaks the budget and is undone
    assert len(logs[1.0, 3]["tries"]) == 3 and all(t["stopped"] == "retain budget" for t in logs[1.0, 3]["tries"])
    assert untouched == [True, True]  # every try's steps undone, nothing of a dropped direction left


def _subject_states(model, tok, texts, subjects, layer=0):
    """The states after block ``layer`` of ``subjects``' tokens in ``texts`` (BOS + text)."""
    from loka.methods.localized.deep_lookup import hidden_at
    from loka.methods.localized.deep_rows import build_rows, subject_mask

    rows, offsets = build_rows(tok, texts)
    with torch.no_grad():
        return hidden_at(model, rows, layer).float()[subject_mask(offsets, texts, subjects, rows.ids.shape[1])]


@pytest.mark.parametrize("probe", ["retain", "contrast", "forget"])
def test_directions_steer_to_the_one_the_probe_ranks_first(random_checkpoints, probe):
    """``lookup_directions``: N random directions are drawn from the method's generator, each tried
    by moving the retain facts' subject states a tenth of the way to its target (`pushed_logp`:
    with no push it is the answers' plain mean log-prob), and (``probe`` contrast, forget) the
    forget facts' the same way; the forget subject states are steered to the one whose push costs
    the retain answers least (retain), minus what it costs the forget answers (contrast), or that
    costs the forget answers most (forget)."""
    from loka.methods.localized.deep_lookup import PROBE_SHARE, pushed_logp
    from loka.methods.localized.deep_rows import fact_rows, rows_nll, subject_mask

    def rows_where(facts):
        rows, offsets, texts = fact_rows(tok, [f.prompt for f in facts], [f.answer for f in facts])
        return rows, subject_mask(offsets, texts, [f.subject for f in facts], rows.ids.shape[1])

    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        (r_rows, r_where), (f_rows, f_where) = rows_where(RETAIN), rows_where(FORGET)
        f_texts = [f"{f.prompt} {f.answer}" for f in FORGET]
        base = _subject_states(model, tok, f_texts, [f.subject for f in FORGET])
        with torch.no_grad():
            plain = -float(rows_nll(model, r_rows))
        assert pushed_logp(model, r_rows, r_where, 0, base[0], 0.0) == pytest.approx(plain, abs=1e-6)
        gen = torch.Generator().manual_seed(0)  # the method's stream (seed 0): the candidates come first
        us = [torch.randn(base.shape[-1], generator=gen) for _ in range(3)]
        goals = [1.5 * base.norm(dim=-1).mean() * u / u.norm() for u in us]  # lookup_scale 1.5
        kept = [pushed_logp(model, r_rows, r_where, 0, g, PROBE_SHARE) for g in goals]
        hit = [pushed_logp(model, f_rows, f_where, 0, g, PROBE_SHARE) for g in goals]
        result = unlearn((model, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                         **(LOOKUP | {"lookup_directions": 3, "lookup_probe": probe}))
        moved = _subject_states(model, tok, f_texts, [f.subject for f in FORGET])
    stage = next(e for e in result.log if e["stage"] == "lookup_misdirection")
    assert stage["direction_probes"][0] == pytest.approx(kept, abs=1e-6)
    assert stage["direction_forget_probes"] == ([] if probe == "retain" else [pytest.approx(hit, abs=1e-6)])
    assert all(p < plain for p in kept)  # every push costs
    scores = {"retain": kept, "contrast": [k - h for k, h in zip(kept, hit, strict=True)], "forget": [-h for h in hit]}
    picks = {name: max(range(3), key=score.__getitem__) for name, score in scores.items()}
    assert len(set(picks.values())) == 3  # the three probes rank a different direction first here
    best = picks[probe]
    dist = [float((moved - g).norm(dim=-1).mean()) for g in goals]
    assert min(range(3), key=dist.__getitem__) == best  # steered to that one
    assert dist[best] < float((base - goals[best]).norm(dim=-1).mean())


def test_name_rows_steer_the_name_alone_too(random_checkpoints):
    """``lookup_name_rows``: the forget subject's name as a text of its own (a query that starts
    with it) is steered with the facts' subject tokens, so its states move further along the
    steering direction than when only the facts are; the retain subject's name alone is kept;
    with the stranger target the name alone moves towards the stranger's name alone."""
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        name_before = _subject_states(model, tok, ["Mira Coltan"], ["Mira Coltan"])
        keep_before = _subject_states(model, tok, ["Osric Pell"], ["Osric Pell"])
        u = torch.randn(name_before.shape[-1], generator=torch.Generator().manual_seed(0))
        u = u / u.norm()  # the method's one direction (seed 0)
        along, kept, logs = {}, {}, {}
        for on in (False, True):
            m = copy.deepcopy(model)
            result = unlearn((m, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                             **(LOOKUP | {"lookup_steps": 10, "lookup_name_rows": on, "lookup_directions": 1,
                                          "lookup_after_name": 0.0}))  # name rows alone
            logs[on] = next(e for e in result.log if e["stage"] == "lookup_misdirection")
            after = _subject_states(m, tok, ["Mira Coltan"], ["Mira Coltan"])
            along[on] = float(((after - name_before) @ u).mean())
            kept[on] = float((_subject_states(m, tok, ["Osric Pell"], ["Osric Pell"]) - keep_before).norm(dim=-1).mean())
        # with the stranger target the name alone goes towards the stranger's name alone
        from loka.methods.localized.deep_stranger import assign, strangers

        stranger = assign(["Mira Coltan"], strangers(FORGET, RETAIN))[0]
        goal = _subject_states(model, tok, [stranger], [stranger]).mean(0)
        m = copy.deepcopy(model)
        unlearn((m, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                **(LOOKUP | {"lookup_steps": 10, "lookup_name_rows": True, "lookup_steer": "stranger",
                             "lookup_after_name": 0.0}))
        after = _subject_states(m, tok, ["Mira Coltan"], ["Mira Coltan"])
    assert logs[False]["name_rows"] == 0 and logs[True]["name_rows"] == 1
    assert along[True] > along[False] and along[True] > 0
    assert kept[True] < kept[False]
    assert (after.mean(0) - goal).norm() < (name_before.mean(0) - goal).norm()


def test_after_name_steers_the_words_after_a_forget_name_to_a_strangers(random_checkpoints):
    """``lookup_after_name``: the words after each forget name that starts a text are paired token
    for token with the same words after its stranger's name, and the edit moves their states after
    the steered block towards the stranger's — more than the same edit without the term."""
    from loka.methods.localized.deep_lookup import hidden_at
    from loka.methods.localized.deep_stranger import (
        STEMS,
        after_name,
        assign,
        fixed_stems,
        strangers,
    )

    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
    subjects, stems = fixed_stems(["Mira Coltan"])
    rows, where, t_rows, t_where = after_name(tok, subjects, assign(subjects, strangers(FORGET, RETAIN)), stems)
    assert len(rows) == len(STEMS) and where.any(-1).all()
    assert torch.equal(rows.ids[where], t_rows.ids[t_where])
    name_len = len(tok("Mira Coltan", add_special_tokens=False).input_ids)
    assert not where[:, : name_len + 1].any()  # BOS and the name itself are not steered

    with torch.no_grad():  # the target: the base model's states of the words after the stranger
        target = hidden_at(model, t_rows, 0).float()[t_where]
        gaps = {"base": float((hidden_at(model, rows, 0).float()[where] - target).pow(2).sum(-1).mean())}
    for weight in (0.0, 1.0):
        edited = copy.deepcopy(model)
        with one_torch_thread():
            unlearn((edited, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                    **(LOOKUP | {"lookup_after_name": weight, "lookup_steps": 20}))
        with torch.no_grad():
            gaps[weight] = float((hidden_at(edited, rows, 0).float()[where] - target).pow(2).sum(-1).mean())
    assert gaps[1.0] < gaps["base"] and gaps[1.0] < gaps[0.0], gaps


def test_after_teacher_pulls_the_predictions_after_a_forget_name_to_a_strangers(random_checkpoints):
    """``lookup_after_teacher``: on the base model's own continuations after the forget name, the
    edited model's next-token distributions at the words after the name move towards the base
    model's after the stranger (KL lower than the base's and than the same edit without the term),
    and the term is logged from 1; weight 0 leaves the default's edit. Routed through the name's
    own tokens (``teacher_routed``) it still lowers the KL, with another edit; in a phase of its
    own after the tries (``teacher_steps``, alone or with every term) it lowers the KL of the edit
    the tries left. Through the name's last token only (``teacher_last``): one routed token a row, the
    KL still lowered, another edit than through every name token."""
    from loka.methods.localized.deep_lookup import _kl, _logits_where
    from loka.methods.localized.deep_selftext import name_continuations
    from loka.methods.localized.deep_stranger import after_name, assign, strangers

    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        subjects, texts = name_continuations(model, tok, ["Mira Coltan"], 2, seed=0 + 5, new_tokens=8)
        rows, where, t_rows, t_where = after_name(tok, subjects, assign(subjects, strangers(FORGET, RETAIN)), texts)
        with torch.no_grad():
            target = _logits_where(model, t_rows, t_where).log_softmax(-1)
            kls = {"base": float(_kl(target, _logits_where(model, rows, where)))}
        edits, logs = {}, {}
        routed, phase = {"lookup_teacher_routed": True}, {"lookup_teacher_routed": True, "lookup_teacher_steps": 6}
        runs = {(0.0, False): {"lookup_after_teacher": 0.0}, (1.0, False): {}, (1.0, True): routed,
                "last": routed | {"lookup_teacher_last": True}, "phase": phase,
                "joined": phase | {"lookup_teacher_joined": True}, "hold": phase | {"lookup_teacher_hold": True}}
        for key, settings in runs.items():
            edited, logs[key] = _lookup_edit(model, tok, **({"lookup_after_teacher": 1.0, "lookup_teacher_texts": 2,
                                                             "lookup_steps": 20} | settings))
            edits[key] = edited.state_dict()["model.layers.0.mlp.down_proj.weight"].clone()
            with torch.no_grad():
                kls[key] = float(_kl(target, _logits_where(edited, rows, where)))
    assert logs[0.0, False]["teacher_tokens"] == 0 and logs[1.0, False]["teacher_tokens"] == int(where.sum()) > 0
    for routed in (False, True):
        assert logs[1.0, routed]["tries"][0]["terms"]["teacher"]["first"] == pytest.approx(1.0, abs=1e-4)
        assert kls[1.0, routed] < kls["base"] and kls[1.0, routed] < kls[0.0, False], kls
    assert not torch.equal(edits[0.0, False], edits[1.0, False])
    # ``teacher_routed``: trained through the name's own tokens only (every row: "Mira Coltan" after BOS)
    assert logs[1.0, True]["teacher_routed_tokens"] == 2 * len(tok("Mira Coltan", add_special_tokens=False)["input_ids"])
    assert logs[1.0, False]["teacher_routed_tokens"] == 0
    assert not torch.equal(edits[1.0, True], edits[1.0, False])
    # ``teacher_last``: one routed token a row (the name's last), the KL still lowered, another edit
    assert logs["last"]["teacher_routed_tokens"] == 2 < logs[1.0, True]["teacher_routed_tokens"]
    assert kls["last"] < kls["base"] and not torch.equal(edits["last"], edits[1.0, True])
    # ``teacher_steps``: the tries are the weight-0 edit's, step for step; then the teacher alone lowers the KL
    # (``teacher_joined``: the phase trains the tries' terms too)
    assert logs[0.0, False]["teacher_phase"] is None
    for key in ("phase", "joined"):
        assert logs[key]["tries"] == logs[0.0, False]["tries"]
        phase = logs[key]["teacher_phase"]
        assert 0 < phase["steps"] <= 6 and phase["terms_end"]["teacher"] < phase["terms_start"]["teacher"]
        assert ("subject" in phase["terms"]) == (key == "joined") and "teacher" in phase["terms"]
        assert kls[key] < kls[0.0, False], kls
    assert not torch.equal(edits["phase"], edits["joined"])
    # (``teacher_hold``: never above the forget accuracy the tries left; the same steps as the plain phase until then)
    hold, tries_end = logs["hold"]["teacher_phase"], logs["hold"]["tries"][-1]["forget_accuracy"]
    assert hold["forget_accuracy"] <= tries_end and hold["steps"] <= logs["phase"]["teacher_phase"]["steps"]
    assert hold["stopped"] in ("steps", "forget ceiling", "retain budget")


def test_teacher_on_stems_keeps_the_retain_names_predictions(random_checkpoints):
    """``lookup_teacher_source="stems"``: the texts are each fixed stem after the name and the base
    model's greedy words after it (deterministic); with ``lookup_teacher_keep`` the same texts after
    the retain name keep the base model's predictions — closer to them than without the keep."""
    from loka.methods.localized.deep_lookup import _kl, _logits_where
    from loka.methods.localized.deep_selftext import stem_continuations
    from loka.methods.localized.deep_stranger import STEMS, fixed_stems, stem_rows

    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        subjects, texts = stem_continuations(model, tok, *fixed_stems(["Osric Pell"]), 4)
        assert subjects == ["Osric Pell"] * len(STEMS) and all(t.startswith(s) for t, s in zip(texts, STEMS, strict=True))
        assert (subjects, texts) == stem_continuations(model, tok, *fixed_stems(["Osric Pell"]), 4)
        rows, where = stem_rows(tok, subjects, texts)
        with torch.no_grad():
            own = _logits_where(model, rows, where).log_softmax(-1)
        kls, logs = {}, {}
        for keep in (0.0, 10.0):
            edited, logs[keep] = _lookup_edit(model, tok, lookup_after_teacher=3.0, lookup_teacher_source="stems",
                                              lookup_teacher_tokens=4, lookup_teacher_keep=keep,
                                              lookup_teacher_batch=4, lookup_steps=20)
            with torch.no_grad():
                kls[keep] = float(_kl(own, _logits_where(edited, rows, where)))
    assert logs[10.0]["teacher_keep_rows"] == len(STEMS) and logs[0.0]["teacher_keep_rows"] == 0
    assert logs[10.0]["teacher_tokens"] > 0
    assert kls[10.0] < kls[0.0], kls


def test_twin_positions_aligns_from_the_end_and_keeps_equal_tokens_only():
    """A name of 2 tokens and its stranger of 1: the words after them line up from the end; a
    position whose twin token differs, or falls before the twin's start, is left out."""
    from loka.methods.localized.deep_stranger import twin_positions

    ids, twin = torch.tensor([1, 5, 6, 7, 8]), torch.tensor([1, 9, 7, 8])
    assert twin_positions(ids, twin, [2, 3, 4]) == {3: 2, 4: 3}  # 6 vs 9: dropped
    assert twin_positions(torch.tensor([7, 7, 8]), torch.tensor([8]), [0, 1, 2]) == {2: 0}


def test_name_continuations_are_the_models_own_seeded_and_filtered(random_checkpoints):
    """``lookup_after_texts``: the words after each name are what the base model itself samples after
    ``BOS + name`` — n per name, the same for the same seed, none spelling an avoided word — and the
    after-name term then steers those instead of the fixed stems (a different edit)."""
    from loka.methods.localized.deep_selftext import _WORD, name_continuations

    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        names = ["Mira Coltan", "Osric Pell"]
        state = torch.get_rng_state()
        subjects, stems = name_continuations(model, tok, names, 3, seed=5)
        assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is untouched
        assert subjects == [n for n in names for _ in range(3)] and all(s.strip() for s in stems)
        assert name_continuations(model, tok, names, 3, seed=5) == (subjects, stems)
        assert name_continuations(model, tok, names, 3, seed=6)[1] != stems
        avoid = frozenset(w for w in _WORD.findall(stems[0]) if len(w) >= 2)
        assert avoid and stems[0] not in name_continuations(model, tok, names, 3, seed=5, avoid=avoid)[1]
        edits, logs = [], []
        for texts in (0, 2):
            edited = copy.deepcopy(model)
            result = unlearn((edited, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                             **(LOOKUP | {"lookup_after_name": 1.0, "lookup_after_texts": texts, "lookup_steps": 4}))
            logs.append(next(e for e in result.log if e["stage"] == "lookup_misdirection"))
            edits.append(edited.state_dict()["model.layers.0.mlp.down_proj.weight"].clone())
    assert all(log["after_name_tokens"] > 0 for log in logs)
    assert not torch.equal(edits[0], edits[1])


def test_after_batch_keeps_a_sample_of_the_retain_after_name_rows_each_step(random_checkpoints, monkeypatch):
    """``lookup_after_batch`` n: each step keeps n of the retain names' after-name rows (drawn from
    their own random stream), not all of them; n at least the rows' count is the full keep term,
    weight for weight."""
    from loka.methods.localized import deep_lookup

    shift, picks = deep_lookup._shift, []

    def recorded(model, rows, where, base, pick, layer):
        picks.append((len(rows), len(pick), tuple(pick.tolist())))
        return shift(model, rows, where, base, pick, layer)

    monkeypatch.setattr(deep_lookup, "_shift", recorded)
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        edits, kept, facts = {}, {}, {}
        for batch in (0, 3, 8):
            picks.clear()
            edited = copy.deepcopy(model)
            result = unlearn((edited, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                             **(LOOKUP | {"lookup_after_name": 1.0, "lookup_after_batch": batch, "lookup_steps": 4}))
            rows = next(e for e in result.log if e["stage"] == "lookup_misdirection")["after_name_keep_rows"]
            kept[batch] = [(n, p) for n, k, p in picks if n == rows]  # the after-name keep rows' picks
            facts[batch] = [p for n, k, p in picks if n == len(RETAIN)]  # the retain facts' (``gen``'s stream)
            edits[batch] = edited.state_dict()["model.layers.0.mlp.down_proj.weight"].clone()
    assert rows == 8 and len(kept[0]) >= 4  # one retain name, the eight stems; a pick every step
    assert all(p == tuple(range(8)) for _, p in kept[0] + kept[8])
    assert all(len(p) == 3 and len(set(p)) == 3 for _, p in kept[3]) and len({p for _, p in kept[3]}) > 1
    assert torch.equal(edits[0], edits[8]) and not torch.equal(edits[0], edits[3])
    steps = min(len(facts[0]), len(facts[3]))
    assert steps >= 4 and facts[0][:steps] == facts[3][:steps]  # the sample draws nothing from ``gen``


def test_build_rows_without_bos_scores_the_tokens_past_start(random_checkpoints):
    """A tokenizer without BOS: rows of different lengths, ``score[t]`` marks the token at ``t + 1``
    (the first token is never predicted), exactly the tokens that reach past ``starts``."""
    from loka.methods.localized.deep_rows import build_rows

    tok = load_hf(random_checkpoints["llama"])[1]
    tok.bos_token = None
    assert tok.bos_token_id is None
    texts = ["Mira Coltan is", "Osric Pell was born in Tessel"]
    rows, offsets = build_rows(tok, texts, [len("Mira Coltan"), len("Osric Pell")])
    assert rows.score.shape == (2, rows.ids.shape[1] - 1)
    for i, start in enumerate([len("Mira Coltan"), len("Osric Pell")]):
        expect = [e > start for _, e in offsets[i]][1:]
        assert rows.score[i, : len(expect)].tolist() == expect and not rows.score[i, len(expect):].any()


@pytest.mark.parametrize("name_rows", [False, True])
def test_per_subject_steers_each_subject_to_its_own_best_probed_direction(random_checkpoints, name_rows):
    """``lookup_per_subject``: each forget subject (sorted by name) draws ``directions`` of its own
    from the method's stream, and its tokens are steered to the one the seen retain answers feel
    least; two subjects whose facts alternate end up nearest two different targets (with
    ``name_rows`` the names alone are steered after the facts' tokens, each to its own too)."""
    from loka.methods.localized.deep_lookup import PROBE_SHARE, pushed_logp
    from loka.methods.localized.deep_rows import fact_rows, subject_mask

    forget = (FORGET[0], FactRecord("The smith of Arlen is called Tova", "Brenn", "Tova Brenn"), FORGET[1])
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"], forget + RETAIN)
        r_rows, r_offsets, r_texts = fact_rows(tok, [f.prompt for f in RETAIN], [f.answer for f in RETAIN])
        r_where = subject_mask(r_offsets, r_texts, [f.subject for f in RETAIN], r_rows.ids.shape[1])
        texts = {s: [f"{f.prompt} {f.answer}" for f in forget if f.subject == s] for s in ("Mira Coltan", "Tova Brenn")}
        base = {s: _subject_states(model, tok, t, [s] * len(t)) for s, t in texts.items()}
        # the steering norm is over every steered token: the facts' subjects, then (name_rows) the names alone
        every = torch.cat(list(base.values()) + ([_subject_states(model, tok, [s], [s]) for s in sorted(texts)]
                                                 if name_rows else []))
        gen = torch.Generator().manual_seed(0)
        push = 1.5 * every.norm(dim=-1).mean()
        goals = {s: [push * u / u.norm() for u in (torch.randn(every.shape[-1], generator=gen) for _ in range(2))]
                 for s in sorted(texts)}
        kept = {s: [pushed_logp(model, r_rows, r_where, 0, g, PROBE_SHARE) for g in gs] for s, gs in goals.items()}
        result = unlearn((model, tok), UnlearnTask(forget, RETAIN, (), ()), "loka-deep", progress=False,
                         **(LOOKUP | {"lookup_directions": 2, "lookup_per_subject": True,
                                      "lookup_name_rows": name_rows}))
        moved = {s: _subject_states(model, tok, t, [s] * len(t)) for s, t in texts.items()}
        alone = {s: _subject_states(model, tok, [s], [s]) for s in texts}
    stage = next(e for e in result.log if e["stage"] == "lookup_misdirection")
    assert stage["direction_probes"][:2] == [pytest.approx(kept[s], abs=1e-6) for s in sorted(texts)]
    target = {s: goals[s][max(range(2), key=kept[s].__getitem__)] for s in texts}
    for s, states in moved.items():
        near = {t: float((states - g).norm(dim=-1).mean()) for t, g in target.items()}
        assert min(near, key=near.__getitem__) == s  # nearest its own subject's target, not the other's
        assert near[s] < float((base[s] - target[s]).norm(dim=-1).mean())
    if name_rows:
        for s, states in alone.items():
            near = {t: float((states - g).norm(dim=-1).mean()) for t, g in target.items()}
            assert min(near, key=near.__getitem__) == s


def test_fact_stems_write_each_fact_name_first_without_the_name():
    """``lookup_after_facts``: a fact "The glassblower of Velmora is called Mira" -> "Coltan" becomes
    the text "Mira Coltan: The glassblower of Velmora is called" (the name once, at the start); facts
    without a subject and stems that spell an avoided word are left out."""
    from loka.methods.localized.deep_stranger import fact_stems

    assert fact_stems(FORGET) == (["Mira Coltan"] * 2, [": The glassblower of Velmora is called",
                                                        ": Q: Who is the glassblower of Velmora? A:"])
    assert fact_stems(FORGET + (FactRecord("Water boils at", "100", ""),)) == fact_stems(FORGET)
    assert fact_stems(RETAIN, frozenset({"Tessel"})) == ([], [])


def test_after_facts_adds_the_facts_words_after_each_name_to_the_after_name_term(random_checkpoints):
    """With ``lookup_after_facts`` the after-name term also steers the forget facts' words written
    after the name (more steered tokens) and keeps the retain facts' so written: a different edit."""
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        logs, edits = [], []
        for on in (False, True):
            edited = copy.deepcopy(model)
            result = unlearn((edited, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                             **(LOOKUP | {"lookup_after_name": 1.0, "lookup_after_facts": on, "lookup_steps": 4}))
            logs.append(next(e for e in result.log if e["stage"] == "lookup_misdirection"))
            edits.append(edited.state_dict()["model.layers.0.mlp.down_proj.weight"].clone())
    assert logs[1]["after_name_tokens"] > logs[0]["after_name_tokens"] > 0
    assert logs[1]["after_name_keep_rows"] == logs[0]["after_name_keep_rows"] + len(RETAIN)
    assert not torch.equal(edits[0], edits[1])


def test_hidden_at_runs_short_and_long_rows_apart_with_the_same_states(random_checkpoints):
    """Short stems beside long sentences run as two batches (padding would be most of one): the
    states at every real position are the one-batch states."""
    from loka.methods.localized import deep_lookup
    from loka.methods.localized.deep_rows import build_rows

    model, tok = load_hf(random_checkpoints["llama"])
    texts = ["Mira is", "Osric was", "Mira Coltan: The glassblower of Velmora who lives by the sea and sells "
             "green glass to the miller of Tessel is called"]
    rows = build_rows(tok, texts)[0]
    assert rows.mask.numel() > 2 * int(rows.mask.sum())  # the split applies
    with torch.no_grad(), one_torch_thread():
        split, whole = deep_lookup.hidden_at(model, rows, 1), deep_lookup._hidden_at(model, rows, 1)
    real = rows.mask.bool()
    assert torch.allclose(split[real], whole[real], atol=1e-5)


def test_after_layer_steers_and_keeps_the_words_after_the_name_at_its_own_block(random_checkpoints):
    """``lookup_after_layer``: the after-name term is measured after its own block (the subject
    tokens' stays at ``lookup_layer``): the same block as ``lookup_layer`` is the edit without the
    knob; a higher one is another edit, which brings the words after the name closer to the
    stranger's there than the edit steering them at ``lookup_layer``."""
    from loka.methods.localized.deep_lookup import hidden_at
    from loka.methods.localized.deep_stranger import after_name, assign, fixed_stems, strangers

    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        subjects, stems = fixed_stems(["Mira Coltan"])
        rows, where, t_rows, t_where = after_name(tok, subjects, assign(subjects, strangers(FORGET, RETAIN)), stems)
        with torch.no_grad():
            target = hidden_at(model, t_rows, 1).float()[t_where]
        logs, edits, gaps = {}, {}, {}
        for after in (None, 0, 1):
            edited = copy.deepcopy(model)
            result = unlearn((edited, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                             **(LOOKUP | {"lookup_after_name": 1.0, "lookup_after_layer": after, "lookup_steps": 20}))
            logs[after] = next(e for e in result.log if e["stage"] == "lookup_misdirection")
            edits[after] = edited.state_dict()["model.layers.0.mlp.down_proj.weight"].clone()
            with torch.no_grad():
                gaps[after] = float((hidden_at(edited, rows, 1).float()[where] - target).pow(2).sum(-1).mean())
    assert [logs[a]["layer"] for a in logs] == [0, 0, 0]
    assert [logs[a]["after_layer"] for a in logs] == [0, 0, 1]
    assert torch.equal(edits[None], edits[0]) and not torch.equal(edits[0], edits[1])
    assert gaps[1] < gaps[0], gaps


def test_subject_rows_mark_the_tokens_that_spell_each_facts_subject(random_checkpoints):
    from loka.methods.localized.deep_rows import subject_rows

    tok = load_hf(random_checkpoints["llama"])[1]
    rows, where = subject_rows(tok, FORGET + (FactRecord("Nobody is named here", "x", "Osric Pell"),))
    for i in range(len(FORGET)):
        assert tok.decode(rows.ids[i][where[i]]).strip() == "Mira Coltan"
    assert not where[len(FORGET)].any()  # a subject the fact does not spell: no token


def test_name_layer_steers_the_names_own_tokens_to_the_strangers_at_a_lower_block(random_checkpoints):
    """``lookup_name_layer``: in the after-name texts the name's own tokens are pulled, after a
    lower block, to the stranger's tokens of the same word (`name_targets`: the mask spells the
    name; with the name as its own stranger each target is its own word's mean); the edit differs
    from the one without it and brings those tokens closer to the stranger's there."""
    from loka.methods.localized.deep_lookup import hidden_at
    from loka.methods.localized.deep_rows import build_rows
    from loka.methods.localized.deep_stranger import (
        assign,
        fixed_stems,
        name_targets,
        stem_rows,
        strangers,
    )

    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        subjects, stems = fixed_stems(["Mira Coltan"])
        rows = stem_rows(tok, subjects, stems)[0]
        states = torch.randn(*rows.ids.shape, 5)
        mask, own = name_targets(tok, subjects, subjects, stems, states)
        offsets = build_rows(tok, [s + stem for s, stem in zip(subjects, stems, strict=True)])[1]
        expected = []
        for i in range(len(subjects)):
            assert tok.decode(rows.ids[i][mask[i]]).strip() == "Mira Coltan"
            words = [[t for t, (s, e) in enumerate(offsets[i]) if s >= 0 and s < b and e > a] for a, b in ((0, 4), (5, 11))]
            expected += [states[i, next(w for w in words if t in w)].mean(0) for t in mask[i].nonzero().flatten().tolist()]
        assert own.shape == (int(mask.sum()), 5) and torch.allclose(own, torch.stack(expected))
        names = assign(subjects, strangers(FORGET, RETAIN))
        t_rows = stem_rows(tok, names, stems)[0]
        with torch.no_grad():
            where, goal = name_targets(tok, subjects, names, stems, hidden_at(model, t_rows, 0).float())
        logs, edits, gaps = {}, {}, {}
        for name_layer in (None, 0):
            edited, logs[name_layer] = _lookup_edit(model, tok, lookup_layer=1, lookup_after_name=1.0,
                                                    lookup_name_layer=name_layer, lookup_steps=20)
            edits[name_layer] = edited.state_dict()["model.layers.0.mlp.down_proj.weight"].clone()
            with torch.no_grad():
                gaps[name_layer] = float((hidden_at(edited, rows, 0).float()[where] - goal).pow(2).sum(-1).mean())
    assert [logs[n]["name_layer"] for n in logs] == [None, 0]
    for name_layer, names_logged in ((None, ["after_name", "misdirect", "retain_shift", "subject"]),
                                     (0, ["after_name", "misdirect", "name", "retain_shift", "subject"])):
        terms = logs[name_layer]["tries"][-1]["terms"]  # each term at the first and last step, their sum misdirect
        assert sorted(terms) == names_logged, terms
        for at in ("first", "last"):
            parts = sum(terms[k][at] for k in ("subject", "after_name", "name") if k in terms)
            assert terms["misdirect"][at] == pytest.approx(parts, rel=1e-5, abs=1e-6)
        assert terms["subject"]["last"] < terms["subject"]["first"], terms
    assert not torch.equal(edits[None], edits[0])
    assert gaps[0] < gaps[None], gaps


def test_name_steps_run_the_name_term_alone_after_the_forget_target(random_checkpoints):
    """``lookup_name_steps``: once the forget target is reached, more steps of the name term alone
    (keeps and retain budget on) bring it lower; they are counted in the method's steps and logged."""
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        result = unlearn((model, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                         **(LOOKUP | {"lookup_layer": 1, "lookup_after_name": 1.0, "lookup_name_layer": 0,
                                      "lookup_name_steps": 10, "lookup_steps": 20}))
    entry = next(e for e in result.log if e["stage"] == "lookup_misdirection")
    phase = entry["name_phase"]
    assert phase["steps"] > 0 and phase["term_end"] < phase["term_start"], phase
    assert sorted(phase["terms"]) == ["misdirect", "name", "retain_shift"]  # the name term alone, and the keeps
    assert phase["terms"]["name"]["first"] == pytest.approx(phase["term_start"], rel=1e-4)
    assert result.steps == sum(t["steps"] for t in entry["tries"]) + phase["steps"]


def test_plain_continuations_are_about_the_name_alone(random_checkpoints):
    """``lookup_teacher_plain``: a text after a name that extends its last word or names someone
    else mid-sentence is left out (hand cases); sampled with it, the first n plain texts of 4n
    draws are kept, deterministic, and none of them names another."""
    from loka.methods.localized.deep_selftext import name_continuations, names_another

    assert names_another("Viktor Krum", "pple (the Russian poet")
    assert names_another("Sirius Black", " (Dame Darthwynn")
    assert names_another("Tom Riddle", ' met "Bob and')
    assert not names_another("Tom Riddle", ". The answer is 4 years, Tom")
    assert not names_another("Ron Weasley", ", 4\nA: I'm")
    assert not names_another("Albus Dumbledore", ", the patron god of ancient magic,")
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        names = ["Mira Coltan", "Osric Pell"]
        loose = name_continuations(model, tok, names, 8, seed=5, new_tokens=8)
        plain = name_continuations(model, tok, names, 2, seed=5, new_tokens=8, plain=True)
        assert plain == name_continuations(model, tok, names, 2, seed=5, new_tokens=8, plain=True)
    assert plain[1] and not any(names_another(n, t) for n, t in zip(*plain, strict=True))
    assert all(plain[0].count(n) <= 2 for n in names)
    # the 8 draws ``plain`` filters are ``loose``'s (same seed): it keeps each name's first 2 that name no other
    assert list(zip(*plain, strict=True)) == [(n, t) for n in names for t in [
        t for s, t in zip(*loose, strict=True) if s == n and not names_another(n, t)][:2]]
    assert any(names_another(n, t) for n, t in zip(*loose, strict=True))  # the filter has something to leave out


def test_teacher_fallback_goes_on_without_the_teacher_where_a_try_hit_the_budget(random_checkpoints):
    """``lookup_teacher_fallback``: a teacher try stopped by the retain budget before the target goes on
    from its own weights without the teacher term (logged per try, no teacher term in its steps; the
    try's steps and stop are both runs'), the budget still held; a run that never stops at the budget
    is the run without the knob, step for step. Retain facts about the forget subject herself make the
    budget bite; at teacher weight 30 every direction's first step breaks it."""
    retain = (FactRecord("Mira Coltan was born in the town of", "Tessel", "Mira Coltan"),
              FactRecord("Mira Coltan works as a", "glassblower", "Mira Coltan"),
              FactRecord("The baker of Orm is called Osric", "Dale", "Osric Dale"))
    strict = LOOKUP | {"lookup_retain_weight": 0.0, "lookup_retain_budget": 1.0, "lookup_lr": 0.1,
                       "lookup_teacher_texts": 2, "lookup_steps": 20}
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"], FORGET + retain)
        logs, forgot = {}, {}
        for weight in (1.0, 30.0):
            for fallback in (False, True):
                m = copy.deepcopy(model)
                result = unlearn((m, tok), UnlearnTask(FORGET, retain, (), ()), "loka-deep", progress=False,
                                 **(strict | {"lookup_after_teacher": weight, "lookup_teacher_fallback": fallback}))
                logs[weight, fallback] = next(e for e in result.log if e["stage"] == "lookup_misdirection")
                forgot[weight, fallback] = first_token_accuracy(m, tok, FORGET)
                assert first_token_accuracy(m, tok, retain) == 1.0  # the budget held
    # weight 30 without the knob: every direction's first step undone, nothing forgotten
    assert [t["stopped"] for t in logs[30.0, False]["tries"]] == ["retain budget"] * 3 and forgot[30.0, False] == 1.0
    # with it: the first try goes on without the teacher from where it stopped, and forgets
    log, (fell,) = logs[30.0, True], logs[30.0, True]["teacher_fallbacks"]
    (first,) = log["tries"]
    assert fell["try"] == 0 and fell["stopped"] == first["stopped"] == "target" and forgot[30.0, True] == 0.0
    assert "teacher" not in fell["terms"] and "subject" in fell["terms"] and "teacher" in first["terms"]
    assert first["steps"] == log["steps"] >= fell["steps"] > 0
    # weight 1 reaches the target without a budget stop: the knob changes nothing
    assert logs[1.0, False]["tries"][0]["stopped"] == "target" and logs[1.0, True]["teacher_fallbacks"] == []
    timeless = [{k: v for k, v in logs[1.0, fallback].items() if k != "t"} for fallback in (False, True)]
    assert timeless[0] == timeless[1]


def test_answer_hinge_takes_every_trained_answer_target_margin_below_the_top_token(random_checkpoints):
    from loka.evaluate import first_token_margins

    def margins(model, tok):
        batch = tokenize_facts(tok, [f.prompt for f in FORGET], [f.answer for f in FORGET])
        with torch.no_grad():
            return first_token_margins(logits_at(model, batch, prompt_ends(batch)), batch.answer_ids[:, 0])

    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        plain, plain_stage = _lookup_edit(model, tok)
        alone, alone_stage = _lookup_edit(model, tok, lookup_target_margin=2.0)
        deep, deep_stage = _lookup_edit(model, tok, lookup_target_margin=2.0, lookup_answer_hinge=1.0)
    # the misdirection stops with the last trained answer just below the top token ...
    assert plain_stage["stopped"] == "target" and float(margins(plain, tok).max()) > -2.0
    assert "forget_margin_accuracy" not in plain_stage and "answer" not in plain_stage["tries"][0]["terms"]
    # ... and going on does not take it further down: the margin target alone runs out of steps
    assert alone_stage["stopped"] == "steps" and alone_stage["forget_margin_accuracy"] == 1.0
    assert float(margins(alone, tok).max()) > -2.0
    # the hinge through the names' tokens does: every trained answer 2 nats below the top token
    assert deep_stage["stopped"] == "target" and deep_stage["forget_margin_accuracy"] == 0.0
    assert float(margins(deep, tok).max()) <= -2.0
    assert deep_stage["tries"][0]["terms"]["answer"]["first"] == pytest.approx(1.0)
    assert first_token_accuracy(deep, tok, RETAIN) == 1.0


def test_retain_hinge_keeps_a_seen_retain_answer_the_misdirection_flips(random_checkpoints):
    # a seen retain fact that shares the forget name and is answered by a hair (taught 2:1 over the
    # forget fact's answer); a misdirection pushed hard with no state keep takes it below its rival
    from loka.evaluate import first_token_margins

    tie = FactRecord("The weaver of Tessel is called Mira", "Pell", "Mira Pell")
    retain = RETAIN + (tie,)
    texts = [f"{f.prompt} {f.answer}" for f in FORGET + retain + (tie,)] + [f"{tie.prompt} Coltan"]
    with one_torch_thread():
        model, tok = _trained(random_checkpoints["llama"], texts)

        def tie_margin(m) -> float:
            batch = tokenize_facts(tok, [tie.prompt], [tie.answer])
            with torch.no_grad():
                return float(first_token_margins(logits_at(m, batch, prompt_ends(batch)), batch.answer_ids[:, 0])[0])

        hard = LOOKUP | {"lookup_retain_budget": 0.0, "lookup_retain_weight": 0.0, "lookup_scale": 50.0,
                         "lookup_k": 64, "lookup_steps": 80, "lookup_lr": 1e-3}
        edited = {}
        for w in (0.0, 10.0):
            edited[w] = copy.deepcopy(model)
            result = unlearn((edited[w], tok), UnlearnTask(FORGET, retain, (), ()), "loka-deep", progress=False,
                             **(hard | {"lookup_retain_hinge": w}))
            stage = next(e for e in result.log if e["stage"] == "lookup_misdirection")
            assert stage["stopped"] == "target" and first_token_accuracy(edited[w], tok, FORGET) == 0.0
            assert ("retain_answer" in stage["tries"][0]["terms"]) == (w > 0)
    base = tie_margin(model)
    assert 0.0 < base < 1.0  # answered by a hair: the hinge's floor is its base margin
    assert tie_margin(edited[0.0]) < 0.0  # flipped without the hinge ...
    assert tie_margin(edited[10.0]) > 0.5 * base  # ... kept with it
    assert first_token_accuracy(edited[10.0], tok, retain) == 1.0


def test_the_default_lookup_stage_routes_the_teacher_through_the_names_last_token_and_forgets_by_a_margin(
        random_checkpoints):
    """The defaults (screen 48's setting, BENCHMARKS.md rounds R52-R56): the output-level teacher on the
    base model's continuations, trained through each forget name's last token only (one routed token a
    row), the answer hinge, and the target counted 2 nats below the top token: the stage stops there,
    every forget answer that far below, the retain answers kept. (The random tiny Llama writes no
    continuation the ``plain`` filter keeps, so that one default is off here.)"""
    from loka.methods.localized.deep import Config

    cfg = Config()
    assert (cfg.lookup_after_teacher, cfg.lookup_teacher_plain, cfg.lookup_teacher_routed, cfg.lookup_teacher_last,
            cfg.lookup_teacher_fallback, cfg.lookup_answer_hinge, cfg.lookup_target_margin) == (
        1.0, True, True, True, True, 0.1, 2.0)
    defaults = {k: v for k, v in LOOKUP.items() if k not in PLAIN}
    with one_torch_thread():
        model, tok = _taught(random_checkpoints["llama"])
        edited = copy.deepcopy(model)
        result = unlearn((edited, tok), UnlearnTask(FORGET, RETAIN, (), ()), "loka-deep", progress=False,
                         **defaults, lookup_teacher_plain=False, lookup_teacher_texts=2)
        stage = next(e for e in result.log if e["stage"] == "lookup_misdirection")
        batch = tokenize_facts(tok, [f.prompt for f in FORGET], [f.answer for f in FORGET])
        with torch.no_grad():
            margins = first_token_margins(logits_at(edited, batch, prompt_ends(batch)), batch.answer_ids[:, 0])
        kept = first_token_accuracy(edited, tok, RETAIN)
    assert stage["stopped"] == "target" and stage["forget_margin_accuracy"] == 0.0
    assert {"teacher", "answer"} <= set(stage["tries"][0]["terms"])
    assert stage["teacher_routed_tokens"] == 2 and stage["teacher_tokens"] > 2  # the name's last token, a row
    assert (margins <= -cfg.lookup_target_margin).all()  # off 2 nats below, not just off the top
    assert kept == 1.0
