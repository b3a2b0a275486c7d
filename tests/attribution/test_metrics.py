import torch

from attribution.metrics import answer_logprob, first_token_logprob, item_metric, passage_loglik


def _logits(bridge, batch):
    with torch.inference_mode():
        return bridge(batch.input_ids, attention_mask=batch.attention_mask)


def test_answer_logprob_is_the_sum_over_answer_tokens(bridge, retain):
    logits = _logits(bridge, retain)
    got = answer_logprob(logits, retain)
    first = first_token_logprob(logits, retain)
    for i in range(len(retain)):
        logp = logits[i].log_softmax(-1)
        positions = retain.answer_mask[i].nonzero().squeeze(-1).tolist()
        expected = sum(float(logp[t - 1, retain.input_ids[i, t]]) for t in positions)
        assert abs(float(got[i]) - expected) < 1e-4
        assert abs(float(first[i]) - float(logp[positions[0] - 1, retain.input_ids[i, positions[0]]])) < 1e-5


def test_passage_loglik_is_the_mean_over_scored_tokens(bridge, passages):
    logits = _logits(bridge, passages)
    got = passage_loglik(logits, passages)
    for i in range(len(passages)):
        n = int(passages.attention_mask[i].sum())
        logp = logits[i].log_softmax(-1)
        expected = sum(float(logp[t - 1, passages.input_ids[i, t]]) for t in range(1, n)) / (n - 1)
        assert abs(float(got[i]) - expected) < 1e-4


def test_padding_does_not_change_an_item_metric(bridge, retain):
    together = item_metric(_logits(bridge, retain), retain)
    alone = torch.cat([item_metric(_logits(bridge, retain[i : i + 1]), retain[i : i + 1]) for i in range(len(retain))])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
