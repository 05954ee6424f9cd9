"""The embedded loop end to end on real data: outputs, determinism, budget, every method."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from prefloop.acquisition import get_rule, rule_names
from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset

pytestmark = pytest.mark.model


def _run(repo_root: Path, out: Path, overrides: list[str]) -> int:
    args = ["run", str(repo_root / "examples" / "quickstart.yaml"), "--output", str(out)]
    for ov in overrides:
        args += ["--set", ov]
    return main(args)


def test_quickstart_end_to_end(repo_root: Path, tmp_path: Path, feature_cache_dir: Path) -> None:
    """The README's run: 100 prompts, 20 held out, 5 rounds of 16, a budget of 80 labels."""
    out = tmp_path / "qs"
    assert _run(repo_root, out, [f"spec.rewardModel.embedder.cacheDir={feature_cache_dir}"]) == 0
    rows = read_dataset(dataset_file(out))
    assert len(rows) == 80
    row = rows[0]
    assert row["prompt"][0]["role"] == "user"
    assert row["chosen"] == [{"role": "assistant", "content": row["chosen"][0]["content"]}]
    assert row["rejected"][0]["role"] == "assistant"
    assert row["chosen"][0]["content"] != row["rejected"][0]["content"] or row["tie"]
    assert {r["acquisition"] for r in rows} == {"delta_ucb"}
    assert all(r["chosen_score"] >= r["rejected_score"] for r in rows)  # deterministic oracle
    assert sorted({r["round"] for r in rows}) == [0, 1, 2, 3, 4]
    assert len({r["pair_id"] for r in rows}) == 80
    table = pq.read_table(dataset_file(out, "parquet")).to_pylist()
    assert table == rows
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [1, 2, 3, 4, 5]
    assert metrics[-1]["annotations_used"] == 80
    assert all(0.0 <= m["heldout_accuracy"] <= 1.0 for m in metrics)
    assert all(m["heldout_num_pairs"] > 0 for m in metrics)
    png = (out / "learning_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs_in_dataset"] == 80
    assert summary["stop_reason"] in {"prompts exhausted", "annotation budget exhausted"}
    summary_md = (out / "summary.md").read_text()
    assert "held-out pairwise accuracy" in summary_md
    assert "- method: **delta_ucb** with source-model strengths, seed 4" in summary_md
    # the quickstart runs Random beside itself (evaluation.shadowRandom) and says what it bought
    shadow = [
        json.loads(x) for x in (out / "shadow-random" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [m["round"] for m in shadow] == [1, 2, 3, 4, 5]
    assert shadow[-1]["annotations_used"] == 80
    assert "Random on the same prompts (shadow run" in summary_md
    assert summary["shadow_random"]["final_heldout_accuracy"] == shadow[-1]["heldout_accuracy"]


def test_same_seed_same_dataset(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _run(repo_root, a, [*small_overrides, "spec.acquisition.method=drts"]) == 0
    assert _run(repo_root, b, [*small_overrides, "spec.acquisition.method=drts"]) == 0
    assert (
        _run(repo_root, c, [*small_overrides, "spec.acquisition.method=drts", "spec.seed=5"]) == 0
    )
    ra, rb, rc = (read_dataset(dataset_file(d)) for d in (a, b, c))
    assert ra == rb
    assert [r["pair_id"] for r in ra] != [r["pair_id"] for r in rc]


def test_budget_is_never_exceeded(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    out = tmp_path / "budget"
    assert _run(repo_root, out, [*small_overrides, "spec.budget.maxAnnotations=11"]) == 0
    rows = read_dataset(dataset_file(out))
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 11
    assert metrics[-1]["annotations_used"] == 11
    assert [m["pairs_judged"] for m in metrics] == [8, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "annotation budget exhausted"


def test_pairs_per_prompt(repo_root: Path, tmp_path: Path, small_overrides: list[str]) -> None:
    out = tmp_path / "ppp"
    ov = [*small_overrides, "spec.pairsPerPrompt=3", "spec.budget.maxRounds=1"]
    assert _run(repo_root, out, ov) == 0
    rows = read_dataset(dataset_file(out))
    assert len(rows) == 24
    by_prompt: dict[str, set[str]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], set()).add(r["pair_id"])
    assert all(len(v) == 3 for v in by_prompt.values())


@pytest.mark.parametrize("method", rule_names())
def test_every_method_runs_in_the_loop(
    method: str, repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    """Two rounds of each registered rule through the whole loop."""
    info = get_rule(method)
    ov = [
        *small_overrides,
        f"spec.acquisition.method={method}",
        "spec.acquisition.params={}",
        "spec.budget.maxRounds=2",
    ]
    if "pref" in info.needs:
        ov.append("spec.rewardModel.head.kind=bgpm")
    if method == "delta_qwen":
        ov.append(
            "spec.acquisition.params={model_ranking: [FuseChat-Gemma-2-9B-Instruct, "
            "FuseChat-Qwen-2.5-7B-Instruct, claude-2, gpt-3.5-turbo-0301, alpaca-7b, "
            "falcon-7b-instruct]}"
        )
    out = tmp_path / method
    assert _run(repo_root, out, ov) == 0
    rows = read_dataset(dataset_file(out))
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2
    warmup = "random" if "pref" in info.needs else method  # round 0 of the BGPM head: warm-up
    assert all(r["acquisition"] == (warmup if r["round"] == 0 else method) for r in rows)
    for r in rows:
        assert (
            r["chosen"][0]["content"] != r["rejected"][0]["content"]
            or r["tie"]
            or (r["chosen_model"] != r["rejected_model"])
        )
    if info.kind == "per_prompt" and method != "delta_qwen":
        assert len(rows) == 16
    assert not math.isnan(metrics[-1]["heldout_accuracy"])
