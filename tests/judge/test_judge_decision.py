"""Scores to labels (shared by the oracle, rubric and reward-model judges): ties within the
margin, order-free winners; aspects turned around with the pair."""

from __future__ import annotations

from typing import Any

import pytest

from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import JudgeRequest, response_key, swap_sides
from prefloop.judge.decision import ScoreDecision
from prefloop.judge.oracle import StoredScoreOracle

A, B = Response("m1", "first text"), Response("m2", "second text")
ITEM = PromptItem("p", "?", (A, B))


def both_orders(decision: ScoreDecision, score_a: float, score_b: float) -> tuple[Any, Any]:
    ab = decision.decide(JudgeRequest("id", ITEM, A, B), score_a, score_b)
    ba = decision.decide(JudgeRequest("id", ITEM, B, A), score_b, score_a)
    return ab, ba


def test_scores_within_the_margin_tie_and_the_tie_winner_is_order_free() -> None:
    decision = ScoreDecision(tie_margin=0.1)
    ab, ba = both_orders(decision, 3.00, 3.05)
    assert ab[2] and ba[2] and ab[1] == ba[1] == 0.5
    canonical_first = A if response_key(A) <= response_key(B) else B
    assert (A if ab[0] == 0 else B) == canonical_first == (B if ba[0] == 0 else A)
    (winner, probability, tie), _ = both_orders(decision, 3.0, 3.2)
    assert (winner, probability, tie) == (1, 0.0, False)


def test_the_oracle_takes_the_tie_margin() -> None:
    oracle = StoredScoreOracle(score_transform="identity", tie_margin=0.5)
    a, b = Response("m1", "x", 4.0), Response("m2", "y", 4.4)
    (j,) = oracle.judge([JudgeRequest("id", PromptItem("p", "?", (a, b)), a, b)])
    assert j.tie and j.probability_a == 0.5
    with pytest.raises(ValueError, match="tie_margin must be a finite number >= 0"):
        StoredScoreOracle(tie_margin=-1.0)


def test_swap_sides_turns_every_side_name_around() -> None:
    aspects = {"a.honesty": 4.0, "b.honesty": 2.0, "ab.a": 0.7, "ba.tie": 0.1, "other": 1.0}
    assert swap_sides(aspects) == {
        "b.honesty": 4.0,
        "a.honesty": 2.0,
        "ba.b": 0.7,
        "ab.tie": 0.1,
        "other": 1.0,
    }
