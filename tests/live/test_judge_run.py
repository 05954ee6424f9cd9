"""``prefloop run`` from prompts alone: fake pool endpoints answer, the rubric judge labels; the
rows carry the judge's ratings and rationale, costs are counted, every judgement is paid once;
pairs the judge fails on are recorded (not labelled) and retried on ``--resume``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_openai import Fault, last_user_text
from live_judge_helpers import (
    PROMPTS,
    CountingJudge,
    expected_rating,
    judge_endpoint,
    judge_reply,
    live_manifest,
    live_servers,
)

from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset
from prefloop.engine.checkpoint import load_checkpoint
from prefloop.judge.rubric_prompts import ASPECTS, rubric_messages


def metrics_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def overall_by_hand(prompt: str, response: str) -> float:
    """The rubric's overall score of a response, from the fake judge's digit distributions."""
    ratings = []
    for aspect in ASPECTS:
        body = {"messages": list(rubric_messages(aspect, prompt, response))}
        (top,) = judge_reply(body, 0).top_logprobs or ({},)
        ratings.append(expected_rating(top))
    return sum(ratings) / len(ratings)


def test_prompts_only_run_labels_with_the_rubric_judge(tmp_path: Path) -> None:
    judge = CountingJudge()
    with live_servers(judge) as (pool, judge_server):
        manifest = live_manifest(
            tmp_path, pool.base_url, judge_server.base_url, models=3, pairsPerPrompt=2
        )
        assert main(["run", str(manifest)]) == 0
        assert judge_server.request_count == judge.total
    run_dir = tmp_path / "run"
    rows = read_dataset(dataset_file(run_dir))
    assert len(rows) == 2 * len(PROMPTS)
    for row in rows:
        prompt, chosen, rejected = (row[k][0]["content"] for k in ("prompt", "chosen", "rejected"))
        assert row["label_source"] == "judge" and row["judge"] == "rubric"
        assert row["chosen_score"] == pytest.approx(overall_by_hand(prompt, chosen))
        assert row["rejected_score"] == pytest.approx(overall_by_hand(prompt, rejected))
        assert row["chosen_score"] >= row["rejected_score"]  # deterministic: the higher wins
        assert row["margin"] == pytest.approx(row["chosen_score"] - row["rejected_score"])
        rationale = row["rationale"]
        assert "first-token log-probabilities" in rationale
        assert f"{row['chosen_model']}: instruction_following" in rationale
        assert f"{row['rejected_model']}: " in rationale and "helpfulness" in rationale
    # every (prompt, response, aspect) asked once: 3 responses x 4 aspects per prompt
    assert len(judge.completed) == judge.total == len(PROMPTS) * 3 * len(ASPECTS)
    metrics = metrics_of(run_dir)
    assert sum(m["judge_calls"] for m in metrics) == judge.total
    assert sum(m["judge_cache_hits"] for m in metrics) == len(PROMPTS) * len(ASPECTS)
    assert sum(m["judge_failures"] for m in metrics) == 0
    tokens_in = sum(m["judge_prompt_tokens"] for m in metrics)
    tokens_out = sum(m["judge_completion_tokens"] for m in metrics)
    assert tokens_in > 0 and tokens_out == judge.total  # one generated position per reply
    judge_cost = sum(m["judge_cost"] for m in metrics)
    assert judge_cost == pytest.approx((2.0 * tokens_in + 8.0 * tokens_out) / 1e6)
    generation = sum(m["generation_cost"] for m in metrics)
    assert generation == pytest.approx(
        sum(
            1.0 * m["generation_prompt_tokens"] + 4.0 * m["generation_completion_tokens"]
            for m in metrics
        )
        / 1e6
    )
    assert sum(m["generation_calls"] for m in metrics) == 3 * len(PROMPTS)
    assert metrics[-1]["cost_total"] == pytest.approx(judge_cost + generation)
    summary = (run_dir / "summary.md").read_text()
    assert f"- judge: {judge.total} calls (0 failed)" in summary
    assert json.loads((run_dir / "summary.json").read_text())["costs"]["judge_calls"] == judge.total
    assert list((run_dir / "judge-cache").glob("shard-*.jsonl"))


def test_failed_pairs_are_recorded_not_labelled_and_retried_on_resume(tmp_path: Path) -> None:
    broken = PROMPTS[1]

    def no_rating(body: dict[str, Any], number: int) -> Fault | None:
        return Fault("text", text="Excellent answer!") if broken in last_user_text(body) else None

    judge = CountingJudge()
    with live_servers(judge, fault_for=no_rating) as (pool, judge_server):
        manifest = live_manifest(tmp_path, pool.base_url, judge_server.base_url)
        assert main(["run", str(manifest)]) == 0
        run_dir = tmp_path / "run"
        rows = read_dataset(dataset_file(run_dir))
        assert {r["prompt"][0]["content"] for r in rows} == set(PROMPTS) - {broken}
        metrics = metrics_of(run_dir)
        assert sum(m["judge_failures"] for m in metrics) == 1
        assert metrics[-1]["judge_failures_pending"] == 1
        assert sum(m["judge_failed_calls"] for m in metrics) >= 1
        assert sum(m["annotations_this_round"] for m in metrics) == len(PROMPTS) - 1
        assert "pairs the judge failed on: 1" in (run_dir / "summary.md").read_text()
        loaded = load_checkpoint(run_dir)
        assert loaded is not None
        (record,) = loaded[0].judge_failures.values()
        assert "invalid_reply" in record["reason"] and record["prompt"] == broken
        paid = judge.total

        judge_server.fault_for = None  # the endpoint recovers
        assert main(["run", str(manifest), "--resume"]) == 0
        assert judge.total - paid == 2 * len(ASPECTS)  # only the failed pair's ratings
    rows = read_dataset(dataset_file(run_dir))
    assert {r["prompt"][0]["content"] for r in rows} == set(PROMPTS)
    retried = [r for r in rows if r["prompt"][0]["content"] == broken]
    assert len(retried) == 1 and retried[0]["chosen_score"] is not None
    loaded = load_checkpoint(run_dir)
    assert loaded is not None and loaded[0].judge_failures == {}
    assert loaded[0].annotations_used == len(PROMPTS)
    assert "pairs the judge failed on: 0" in (run_dir / "summary.md").read_text()


def test_prompts_only_run_with_the_pairwise_judge(tmp_path: Path) -> None:
    judge = CountingJudge()
    with live_servers(judge) as (pool, judge_server):
        endpoint = judge_endpoint(judge_server.base_url)
        manifest = live_manifest(
            tmp_path,
            pool.base_url,
            judge_server.base_url,
            prompts=2,
            judge={"kind": "pairwise", "tiePolicy": "random", "llm": {"endpoint": endpoint}},
            output={"dir": str(tmp_path / "run"), "ties": "include"},
        )
        assert main(["run", str(manifest)]) == 0
    rows = read_dataset(dataset_file(tmp_path / "run"))
    assert len(rows) == 2 and judge.total == len(judge.completed) == 2 * 2  # both orders
    for row in rows:
        assert row["judge"] == "pairwise" and "both orders" in row["rationale"]
        assert row["chosen_score"] is None  # no per-response scores
        assert row["tie"] or row["probability_chosen"] > 0.5
