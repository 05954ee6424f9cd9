"""Reading a judge's reply: expected rating from first-token log-probabilities, strict parsing,
garbage refused (never renormalised into a rating)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefloop.judge.ratings import (
    GarbageLogprobs,
    label_probabilities,
    parse_label,
    read_labels,
    reply_problem,
)
from prefloop.judge.rubric import RATING_LABELS, RATING_VALUES


def test_expected_rating_renormalises_over_the_five_digits() -> None:
    # ActiveUltraFeedback: exp of each digit's logprob (missing -> 0), renormalised, sum s*p(s)
    top = [("4", math.log(0.5)), ("5", math.log(0.2)), ("The", math.log(0.25)), ("2", -30.0)]
    probs = label_probabilities(top, RATING_LABELS)
    assert probs is not None
    want = np.array([0.0, math.exp(-30.0), 0.0, 0.5, 0.2])
    want /= want.sum()
    np.testing.assert_allclose(probs, want, rtol=1e-12)
    reading = read_labels("4", top, RATING_LABELS)
    assert reading is not None and reading.source == "logprobs"
    assert reading.expected(RATING_VALUES) == pytest.approx(float(np.dot(want, RATING_VALUES)))


def test_tokens_with_spaces_count_for_their_label_and_add_up() -> None:
    top = [(" 3", math.log(0.3)), ("3", math.log(0.1)), ("1", math.log(0.4))]
    probs = label_probabilities(top, RATING_LABELS)
    assert probs == pytest.approx((0.5, 0.0, 0.5, 0.0, 0.0))


def test_no_label_among_the_logprobs_falls_back_to_the_text() -> None:
    top = [("I", -0.1), ("The", -2.0)]
    assert label_probabilities(top, RATING_LABELS) is None
    reading = read_labels("3.", top, RATING_LABELS)
    assert reading is not None and reading.source == "text"
    assert reading.expected(RATING_VALUES) == 3.0
    assert read_labels("I think 3", top, RATING_LABELS) is None


@pytest.mark.parametrize("bad", [math.nan, 0.5])
def test_garbage_logprobs_are_refused(bad: float) -> None:
    with pytest.raises(GarbageLogprobs, match="log-probability"):
        label_probabilities([("4", bad)], RATING_LABELS)
    problem = reply_problem("4", [("4", bad)], RATING_LABELS)
    assert problem is not None and problem.startswith("garbage first-token log-probabilities")


@pytest.mark.parametrize(
    ("text", "index"),
    [("4", 3), (" 5\n", 4), ("**2**", 1), ("1. Irrelevant", 0), ("[3]", 2)],
)
def test_strict_format_accepts_a_leading_rating(text: str, index: int) -> None:
    assert parse_label(text, RATING_LABELS) == index


@pytest.mark.parametrize("text", ["", "four", "15", "Rating: 4", "I'd say 4", "4x", "0"])
def test_strict_format_refuses_anything_else(text: str) -> None:
    assert parse_label(text, RATING_LABELS) is None
    problem = reply_problem(text, None, RATING_LABELS)
    assert problem is not None and "no label of 1, 2, 3, 4, 5" in problem


def test_letters_for_the_pairwise_judge() -> None:
    labels = ("A", "B", "C")
    assert parse_label("B\nBecause it is shorter.", labels) == 1
    assert parse_label("Both are fine", labels) is None
    p_a = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.3))
    assert label_probabilities([("A", -0.1), (" C", -2.3)], labels) == pytest.approx(
        (p_a, 0.0, 1.0 - p_a)
    )
    assert reply_problem("A", None, labels) is None
