"""The budget arithmetic of ``engine/budget.py``: greedy in priority order within both budgets."""

from __future__ import annotations

import numpy as np

from prefloop.engine.budget import (
    UNLIMITED,
    Remaining,
    keep_within_budget,
    priority_order,
    remaining_budget,
)


def test_greedy_keeps_judge_pairs_self_labels_and_free_rows_within_both_budgets() -> None:
    # rows in priority order: J = judge call + pair, P = pair only (identity label), F = free
    judge = np.array([1, 1, 0, 1, 0, 1, 0, 0], bool)
    pair = np.array([1, 1, 1, 1, 1, 1, 0, 1], bool)
    order = np.arange(8)
    keep = keep_within_budget(judge, pair, order, Remaining(annotations=2, pairs=4))
    # J J P (J skipped: no judge call left) P (J skipped) F P (pair budget full)
    assert keep.tolist() == [True, True, True, False, True, False, True, False]
    reverse = keep_within_budget(judge, pair, order[::-1], Remaining(annotations=2, pairs=4))
    assert reverse.tolist() == [False, False, False, True, True, True, True, True]


def test_priority_order_by_score_puts_nan_last_and_random_is_seeded() -> None:
    score = np.array([0.2, np.nan, 0.9, -1.0, 0.9])
    assert priority_order(score, "score", seed=0).tolist() == [2, 4, 0, 3, 1]
    a, b = priority_order(score, "random", 5), priority_order(score, "random", 5)
    assert np.array_equal(a, b) and sorted(a.tolist()) == list(range(5))
    assert any(not np.array_equal(a, priority_order(score, "random", s)) for s in range(6, 10))


def test_remaining_names_the_budget_that_ran_out() -> None:
    assert remaining_budget(None, None, 10, 10) == Remaining(UNLIMITED - 10, UNLIMITED - 10)
    assert remaining_budget(5, 20, 5, 5).exhausted == "annotation budget exhausted"
    assert remaining_budget(None, 8, 0, 8).exhausted == "pair budget exhausted"
    assert remaining_budget(5, 8, 4, 7).exhausted == ""
