"""The shared pair helpers and input checks behind the ActiveUltraFeedback rules."""

from __future__ import annotations

import numpy as np
import pytest
from _inputs import make_inputs, random_mask
from hypothesis import given, settings
from hypothesis import strategies as st

from prefloop.acquisition import AcquisitionError, select
from prefloop.acquisition._pairs import (
    RoundResults,
    masked_pair_argmax,
    pair_validity,
    top_k_in_order,
    top_k_pairs,
    uniform_choice,
)
from prefloop.acquisition.delta_quantile import quantile_window


def test_pair_validity_excludes_diagonal_and_padding() -> None:
    valid = pair_validity(np.array([[True, False, True]]))
    expected = np.zeros((1, 3, 3), bool)
    expected[0, 0, 2] = expected[0, 2, 0] = True
    np.testing.assert_array_equal(valid, expected)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), levels=st.integers(1, 4))
def test_top_one_is_the_flat_argmax_with_first_index_ties(seed: int, n: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    mask = random_mask(rng, 8, n)
    values = rng.integers(0, levels, size=(8, n, n)).astype(float)  # many ties
    valid = pair_validity(mask)
    fast = top_k_pairs(values, valid, 1)
    order = np.argsort(-np.where(valid, values, -np.inf).reshape(8, n * n), axis=1, kind="stable")
    general = top_k_in_order(order, valid, 1)
    np.testing.assert_array_equal(fast.first, general.first)
    np.testing.assert_array_equal(fast.second, general.second)
    first, second, has = masked_pair_argmax(values, valid)
    np.testing.assert_array_equal(fast.first, first[has])
    np.testing.assert_array_equal(fast.second, second[has])
    for p, i, j in zip(fast.prompt_index, fast.first, fast.second, strict=True):
        legal = [(a, b) for a in range(n) for b in range(n) if valid[p, a, b]]
        best = max(values[p, a, b] for a, b in legal)
        assert (i, j) == min((a, b) for a, b in legal if values[p, a, b] == best)


def test_top_k_counts_each_unordered_pair_once_in_its_better_orientation() -> None:
    values = np.array([[[0.0, 5.0, 1.0], [4.0, 0.0, 3.0], [2.0, 6.0, 0.0]]])
    valid = pair_validity(np.ones((1, 3), bool))
    picked = top_k_pairs(values, valid, 3)
    got = list(zip(picked.first.tolist(), picked.second.tolist(), strict=True))
    assert got == [(2, 1), (0, 1), (2, 0)]
    np.testing.assert_allclose(picked.gather(values), [6.0, 5.0, 2.0])


def test_top_k_caps_at_the_number_of_pairs_per_prompt() -> None:
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    picked = top_k_pairs(np.zeros((2, 4, 4)), pair_validity(mask), 5)
    np.testing.assert_array_equal(np.bincount(picked.prompt_index), [1, 5])


def test_uniform_choice_only_picks_allowed_entries() -> None:
    allowed = np.array([[False, True, False, True], [False, False, False, False]])
    index, has_any = uniform_choice(np.random.default_rng(0), np.repeat(allowed, 500, axis=0))
    np.testing.assert_array_equal(has_any, np.repeat([True, False], 500))
    first_rows = index[:500]
    assert set(np.unique(first_rows)) == {1, 3}
    assert abs(np.mean(first_rows == 1) - 0.5) < 0.08


def test_round_results_stack_prompt_major_and_empty() -> None:
    empty, scores = RoundResults().stack()
    assert empty.size == 0 and scores.size == 0
    rounds = RoundResults()
    rounds.append(np.array([True, True]), np.array([0, 1]), np.array([1, 2]), np.array([0.5, 0.6]))
    rounds.append(np.array([False, True]), np.array([0, 0]), np.array([2, 2]), np.array([0.7, 0.8]))
    picked, score = rounds.stack()
    np.testing.assert_array_equal(picked.prompt_index, [0, 1, 1])
    np.testing.assert_array_equal(picked.first, [0, 1, 0])
    np.testing.assert_allclose(score, [0.5, 0.6, 0.8])


def test_quantile_window_edges() -> None:
    lo, hi = quantile_window(np.array([12, 12, 12, 2, 0]), 0.25, 0.0)
    np.testing.assert_array_equal(lo, [3, 3, 3, 0, 0])
    np.testing.assert_array_equal(hi, [4, 4, 4, 1, 0])
    lo, hi = quantile_window(np.array([100]), 0.29, 0.0)  # 0.29 * 100 floors to 29, not 28
    assert (lo[0], hi[0]) == (29, 30)
    lo, hi = quantile_window(np.array([20]), 1.0, 0.1)
    assert (lo[0], hi[0]) == (18, 20)


# --- input checks, shared by every rule ------------------------------------------------------


@pytest.mark.parametrize("rule", ["delta_ucb", "dts", "maxmin_lcb", "infomax"])
def test_nan_reward_on_a_real_response_names_the_row(rule: str) -> None:
    inputs = make_inputs([[0.0, 1.0], [0.0, np.nan]], [[0.1, 0.1], [0.1, 0.1]])
    with pytest.raises(AcquisitionError, match=r"mean.*prompt row \[1\]"):
        select(rule, inputs, np.random.default_rng(0))


def test_negative_std_and_misshapen_std_are_rejected() -> None:
    negative = make_inputs([[0.0, 1.0]], [[0.1, -0.1]])
    with pytest.raises(AcquisitionError, match="negative"):
        select("delta_ucb", negative, np.random.default_rng(0))
    wrong = make_inputs([[0.0, 1.0]], [[0.1, 0.1]])
    wrong = type(wrong)(mean=wrong.mean, std=np.zeros((1, 3)), mask=wrong.mask)
    with pytest.raises(AcquisitionError, match=r"std has shape \(1, 3\)"):
        select("drts", wrong, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("rule", "params", "match"),
    [
        ("delta_ucb", {"beta": -1.0}, "beta"),
        ("dts", {"max_iterations": -1}, "max_iterations"),
        ("maxmin_lcb", {"argmax_tol": float("nan")}, "argmax_tol"),
        ("delta_quantile", {"epsilon": -0.1}, "epsilon"),
        ("ultrafeedback", {"subset_size": 1, "by": "reward"}, "subset_size"),
    ],
)
def test_bad_parameters_name_themselves(rule: str, params: dict[str, object], match: str) -> None:
    inputs = make_inputs([[0.0, 1.0, 2.0]], [[0.1, 0.1, 0.1]])
    with pytest.raises(AcquisitionError, match=match):
        select(rule, inputs, np.random.default_rng(0), **params)
