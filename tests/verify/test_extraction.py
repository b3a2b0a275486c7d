import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from loka.verify.measurements.extraction import (
    exact_token_match_rate,
    extraction_summary,
    lcs_length,
    longest_common_prefix,
    rouge_l_f1,
)


def _batch():
    # item 0: one substitution at position 3; item 1: a shifted copy against a padded reference
    generated = torch.tensor([[1, 2, 3, 9, 5], [7, 1, 2, 0, 0]])
    reference = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 0]])
    ref_mask = torch.tensor([[True] * 5, [True, True, True, True, False]])
    gen_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return generated, reference, ref_mask, gen_mask


def test_exact_match_and_lcp_hand():
    g, r, m, gm = _batch()
    # item 0: 4 of 5 positions equal; item 1: 7/1, 1/2, 2/3 differ and the 4th is not generated
    np.testing.assert_allclose(exact_token_match_rate(g, r, m, gm), [0.8, 0.0])
    assert longest_common_prefix(g, r, m, gm).tolist() == [3, 0]


def test_rouge_l_hand():
    g, r, m, gm = _batch()
    # item 0: LCS [1 2 3 5] = 4, P = R = 4/5 -> F1 .8
    # item 1: LCS [1 2] = 2, P = 2/3, R = 2/4 -> F1 = 2 (1/3) / (7/6) = 4/7
    np.testing.assert_allclose(rouge_l_f1(g, r, m, gm), [0.8, 4 / 7], atol=1e-12)


def test_extraction_strength_summary():
    g, r, m, gm = _batch()
    summary = extraction_summary(g, r, m, gm)
    assert summary == pytest.approx(
        {
            "exact_match_rate": 0.4,
            "lcp_tokens": 1.5,
            "lcp_fraction": 0.3,
            "rouge_l_f1": (0.8 + 4 / 7) / 2,
            "n_items": 2,
        }
    )


def test_generation_shorter_than_reference():
    r = torch.tensor([[1, 2, 3, 4]])
    m = torch.ones(1, 4, dtype=torch.bool)
    g = torch.tensor([[1, 2]])
    assert exact_token_match_rate(g, r, m).tolist() == [0.5]
    assert longest_common_prefix(g, r, m).tolist() == [2]
    # LCS 2, P = 1, R = .5 -> F1 = 2/3
    assert rouge_l_f1(g, r, m)[0] == pytest.approx(2 / 3)


def test_mask_with_holes_is_rejected():
    with pytest.raises(ValueError, match="right-padded"):
        exact_token_match_rate(
            torch.tensor([[1, 2]]), torch.tensor([[1, 2]]), torch.tensor([[False, True]])
        )


def test_lcs_hand():
    assert lcs_length(np.array([7, 1, 2]), np.array([1, 2, 3, 4])) == 2
    assert lcs_length(np.array([1, 3, 4, 1, 2, 1, 3]), np.array([3, 4, 1, 2, 1, 3])) == 6
    assert lcs_length(np.array([], dtype=np.int64), np.array([1, 2])) == 0


def _lcs_reference(a: list[int], b: list[int]) -> int:
    """Textbook O(nm) table, written independently of the vectorised rows."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = (
                table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
            )
    return table[-1][-1]


tokens = st.lists(st.integers(0, 4), max_size=12)


@given(tokens, tokens)
def test_lcs_matches_textbook_dp(a, b):
    arr = lambda x: np.array(x, dtype=np.int64)  # noqa: E731
    assert lcs_length(arr(a), arr(b)) == _lcs_reference(a, b) == lcs_length(arr(b), arr(a))
