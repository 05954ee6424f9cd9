"""make_judge builds judges by name and rejects unknown kinds and parameters clearly."""

from __future__ import annotations

import pytest

from prefloop.data.records import PromptItem, Response
from prefloop.judge import Judge, JudgeRequest
from prefloop.judge.oracle import StoredScoreOracle
from prefloop.judge.registry import judge_kinds, judge_parameters, make_judge


def test_make_oracle_passes_seed_and_params() -> None:
    judge = make_judge("oracle", seed=9, mode="bradley_terry", temperature=0.5, name="bt")
    assert isinstance(judge, StoredScoreOracle)
    assert (judge.seed, judge.mode, judge.temperature, judge.name) == (
        9,
        "bradley_terry",
        0.5,
        "bt",
    )


def test_made_judge_satisfies_the_protocol() -> None:
    judge: Judge = make_judge("oracle", seed=0)
    a, b = Response("x", "short", 0.1), Response("y", "long", 0.9)
    (j,) = judge.judge([JudgeRequest("p", PromptItem("q", "?", (a, b)), a, b)])
    assert j.winner == 1
    assert judge.name == "stored-score-oracle"


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown judge kind 'gpt'; known kinds: oracle, pairwise, reward_model, rubric",
    ):
        make_judge("gpt", seed=0)  # type: ignore[arg-type]


def test_unknown_parameter_lists_accepted_ones() -> None:
    with pytest.raises(
        ValueError, match=r"does not accept parameter\(s\) temprature; accepted: mode"
    ):
        make_judge("oracle", seed=0, temprature=2.0)
    assert judge_kinds() == ("oracle", "pairwise", "reward_model", "rubric")
    assert {"llm", "config_key", "cache", "aspects"} <= set(judge_parameters("rubric"))
    assert "tie_policy" in judge_parameters("oracle")
    assert "seed" not in judge_parameters("oracle")


def test_invalid_values_are_reported() -> None:
    with pytest.raises(ValueError, match="tie_policy must be one of"):
        make_judge("oracle", seed=0, tie_policy="coin")
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        make_judge("oracle", seed=-3)
