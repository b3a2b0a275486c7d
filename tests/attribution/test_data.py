from dataclasses import dataclass

import pytest
import torch

from attribution.data import (
    data_hash,
    prefix_ids,
    set_prefix,
    tokenize_facts,
    tokenize_passages,
    with_prefix,
)


def test_fact_layout_puts_bos_prompt_answer_and_pads_right(bridge, forget):
    tok = bridge.tokenizer
    for i, (prompt, answer) in enumerate(zip(forget.prompts, forget.answers, strict=True)):
        n = int(forget.attention_mask[i].sum())
        ids = forget.input_ids[i]
        assert ids[0] == tok.bos_token_id
        assert (ids[n:] == tok.pad_token_id).all()
        answer_pos = forget.answer_mask[i].nonzero().squeeze(-1)
        assert answer_pos.tolist() == list(range(int(forget.prompt_last[i]) + 1, n))
        assert tok.decode(ids[answer_pos]) == " " + answer
        assert tok.decode(ids[1 : forget.prompt_last[i] + 1]) == prompt
        assert ids[answer_pos].tolist() == forget.answer_ids[i, : forget.answer_lengths[i]].tolist()


def test_no_extra_space_when_prompt_ends_in_whitespace(bridge):
    batch = tokenize_facts(bridge.tokenizer, ["Q: Where was Mira born? A: "], ["Velmora"])
    assert bridge.tokenizer.decode(batch.answer_ids[0, : batch.answer_lengths[0]]) == "Velmora"


@pytest.mark.parametrize(
    ("prompts", "answers", "message"),
    [([], [], "empty"), (["a"], ["b", "c"], "1 prompts but 2 answers"),
     (["Mira was born in"], [""], "tokenises to nothing"), (["Mira was born in"], ["   "], "tokenises to nothing")],
)
def test_fact_errors(bridge, prompts, answers, message):
    with pytest.raises(ValueError, match=message):
        tokenize_facts(bridge.tokenizer, prompts, answers)


def test_too_long_prompt_names_the_context(bridge):
    with pytest.raises(ValueError, match=r"fact 0 .*longer than the model context \(64\)"):
        tokenize_facts(bridge.tokenizer, ["Mira Coltan was born in " * 20], ["Velmora"], max_len=bridge.cfg.n_ctx)
    with pytest.raises(ValueError, match="passage 1 .*longer than the model context"):
        tokenize_passages(bridge.tokenizer, ["short", "word " * 100], max_len=bridge.cfg.n_ctx)


def test_passage_errors(bridge):
    with pytest.raises(ValueError, match="empty"):
        tokenize_passages(bridge.tokenizer, [])
    with pytest.raises(ValueError, match="no token to score"):
        tokenize_passages(bridge.tokenizer, [""])


def test_passages_score_every_real_token_but_the_first(passages):
    assert (passages.score_mask.sum(-1) == passages.attention_mask.sum(-1) - 1).all()
    assert not passages.score_mask[:, 0].any()


@dataclass
class _NoBosTokenizer:
    """Wraps a tokenizer, hiding BOS and pad, as GPT-2-style tokenizers without specials do."""

    inner: object
    bos_token_id: None = None
    pad_token_id: None = None

    @property
    def eos_token_id(self):
        return self.inner.eos_token_id

    def __call__(self, text, add_special_tokens=False):
        return self.inner(text, add_special_tokens=add_special_tokens)


def test_without_bos_nothing_is_prepended_and_eos_pads(bridge):
    tok = _NoBosTokenizer(bridge.tokenizer)
    batch = tokenize_facts(tok, ["Mira was", "Osric Pell works as a"], ["born", "glassblower"])
    prompt = bridge.tokenizer("Mira was", add_special_tokens=False)["input_ids"]
    answer = bridge.tokenizer(" born", add_special_tokens=False)["input_ids"]
    n = len(prompt) + len(answer)
    assert batch.input_ids[0, :n].tolist() == prompt + answer
    assert (batch.input_ids[0, n:] == tok.eos_token_id).all()
    assert batch.prompt_last[0] == len(prompt) - 1


def test_prefix_none_is_the_prompt_as_the_tokenizer_encodes_it_and_is_saved_with_it(bridge, tmp_path):
    """`set_prefix`: ``none`` puts nothing first (the prompt's own ids, as a tokenizer that adds no
    BOS encodes it, the answer after them), ``eos`` the EOS token; the choice is saved with the tokenizer and read back; an unknown
    prefix says which ones exist."""
    from transformers import AutoTokenizer

    bridge.tokenizer.save_pretrained(tmp_path / "a")
    tok = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert prefix_ids(tok) == [tok.bos_token_id]  # the default: LOKA's worlds are trained so
    prompt, answer = "Osric Pell works as a", "glassblower"
    bare = tok(prompt, add_special_tokens=False)["input_ids"]
    own = bare + tok(" " + answer, add_special_tokens=False)["input_ids"]
    assert tokenize_facts(tok, [prompt], [answer], prefix="none").input_ids[0].tolist() == own
    assert tokenize_facts(tok, [prompt], [answer], prefix="eos").input_ids[0].tolist() == [tok.eos_token_id, *own]
    set_prefix(tok, "none")
    tok.save_pretrained(tmp_path / "b")
    again = AutoTokenizer.from_pretrained(tmp_path / "b")
    assert prefix_ids(again) == []
    batch = tokenize_facts(again, [prompt], [answer])
    assert batch.input_ids[0].tolist() == own and int(batch.prompt_last[0]) == len(bare) - 1
    assert tokenize_passages(again, [prompt]).input_ids[0].tolist() == bare
    # the default's hash is the data's alone (as before prefixes); another prefix is other data
    default = tokenize_facts(tok, [prompt], [answer], prefix="bos")
    assert default.hash == data_hash({"prompts": [prompt], "answers": [answer]}) != batch.hash
    with pytest.raises(ValueError, match="unknown prefix 'cls': use one of bos, eos, none"):
        set_prefix(again, "cls")
    # with_prefix: a copy read after another prefix; the tokenizer it came from keeps its own
    copy = with_prefix(again, "eos")
    assert prefix_ids(copy) == [tok.eos_token_id] and prefix_ids(again) == []
    assert tokenize_facts(copy, [prompt], [answer]).input_ids[0].tolist() == [tok.eos_token_id, *own]
    # a one-token text has nothing to score without a prefix, but its state can still be read
    one = tok("Osric", add_special_tokens=False)["input_ids"][:1]
    word = tok.decode(one)
    with pytest.raises(ValueError, match="no token to score after the first"):
        tokenize_passages(again, [word])
    assert tokenize_passages(again, [word], scored=False).input_ids[0].tolist() == one


def test_slices_chunks_repeat_and_device(forget, retain):
    first = retain[0:1]
    assert len(first) == 1 and first.input_ids.shape[1] == int(retain.attention_mask[0].sum())
    assert first.prompts == retain.prompts[:1] and first.hash != retain.hash
    chunks = list(retain.chunks(2))
    assert [len(c) for c in chunks] == [2, 1]
    tripled = forget.repeat(3)
    assert len(tripled) == 6 and torch.equal(tripled.input_ids[4:], forget.input_ids)
    assert forget.to("cpu").input_ids.device.type == "cpu"
    with pytest.raises(ValueError, match="chunk size"):
        next(forget.chunks(0))


def test_data_hash_is_canonical():
    assert data_hash({"a": 1, "b": [1, 2]}) == data_hash({"b": [1, 2], "a": 1})
    assert data_hash({"a": 1}) != data_hash({"a": 2})
    assert len(data_hash([])) == 64
