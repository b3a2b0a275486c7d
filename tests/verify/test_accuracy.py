import numpy as np
import pytest
import torch

from loka.evaluate import first_token_hits
from loka.verify.measurements.accuracy import accuracy, greedy_exact_match


def test_first_token_correct_hand():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    correct = first_token_hits(logits, torch.tensor([1, 1, 2]))
    assert correct.tolist() == [True, False, True]
    assert accuracy(correct.numpy()) == pytest.approx(2 / 3)


def test_greedy_exact_match_hand():
    generated = torch.tensor([[5, 6, 0], [5, 7, 0], [5, 6, 9], [5, 0, 0]])
    answers = torch.tensor([[5, 6], [5, 6], [5, 6], [5, 6]])
    answer_mask = torch.tensor([[True, True], [True, True], [True, True], [True, False]])
    # item 2: extra tokens after the answer do not matter; item 3: the answer is just [5]
    assert greedy_exact_match(generated, answers, answer_mask).tolist() == [True, False, True, True]


def test_greedy_exact_match_short_or_stopped_generation_is_wrong():
    answers = torch.tensor([[5, 6, 7]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert greedy_exact_match(torch.tensor([[5, 6]]), answers, mask).tolist() == [False]
    # EOS after two tokens, then padding that happens to equal the answer's last token
    gen_mask = torch.tensor([[True, True, False]])
    assert greedy_exact_match(torch.tensor([[5, 6, 7]]), answers, mask, gen_mask).tolist() == [
        False
    ]


def test_accuracy_of_empty_set_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        accuracy(np.zeros(0, dtype=bool))
