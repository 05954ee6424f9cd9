"""Issue 7 item 1: two budgets, judge calls and dataset pairs, both enforced and reported.

``budget.maxAnnotations`` counts judge calls; ``budget.maxPairs`` counts every pair that enters
the dataset whatever labelled it. DeltaQwen labels by model identity (no judge call), so only the
pair budget can stop it; ADPO's pseudo-labelled pairs count as pairs once the dataset keeps them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _loop import run_loop

pytestmark = pytest.mark.model

RANKING = (
    "spec.acquisition.params={model_ranking: [FuseChat-Gemma-2-9B-Instruct, claude-2, "
    "gpt-3.5-turbo-0301, alpaca-7b, falcon-7b-instruct]}"
)


def _per_round(metrics: list[dict[str, object]], key: str) -> list[object]:
    return [m[key] for m in metrics]


def test_delta_qwen_spends_the_pair_budget(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    ov = [*small_overrides, "spec.acquisition.method=delta_qwen", RANKING]
    result = run_loop(repo_root, tmp_path / "dq", [*ov, "spec.budget.maxPairs=11"])
    metrics = result.state.metrics
    assert len(result.rows) == 11
    assert {r["label_source"] for r in result.rows} == {"identity"}
    assert result.state.stop_reason == "pair budget exhausted"
    assert (result.state.pairs_used, result.state.annotations_used) == (11, 0)
    assert _per_round(metrics, "pairs_this_round") == [8, 3]
    assert _per_round(metrics, "pairs_used") == [8, 11]
    assert _per_round(metrics, "annotations_this_round") == [0, 0]
    assert _per_round(metrics, "annotations_used") == [0, 0]


def test_the_tighter_budget_stops_the_run(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    """Judge-labelled pairs count against both budgets; whichever is smaller binds."""
    ov = [
        *small_overrides,
        "spec.acquisition.method=random",
        "spec.acquisition.params={}",
        "spec.budget.maxAnnotations=11",
    ]
    result = run_loop(repo_root, tmp_path / "both", [*ov, "spec.budget.maxPairs=5"])
    assert len(result.rows) == 5
    assert (result.state.pairs_used, result.state.annotations_used) == (5, 5)
    assert result.state.stop_reason == "pair budget exhausted"
    assert result.state.metrics[-1]["budget_truncated"] == 3


def test_kept_pseudo_labels_count_as_pairs_not_judge_calls(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    """ADPO with gamma 0 pseudo-labels every pair; kept in the dataset, they spend the pair
    budget (and no judge call), so the pair budget stops the run."""
    ov = [
        *small_overrides,
        "spec.acquisition.method=adpo",
        "spec.acquisition.params={gamma: 0.0}",
        "spec.output.includePseudoLabels=true",
        "spec.budget.maxPairs=12",
    ]
    result = run_loop(repo_root, tmp_path / "adpo", ov)
    metrics = result.state.metrics
    sources = [r["label_source"] for r in result.rows]
    assert len(result.rows) == result.state.pairs_used == 12
    assert result.state.annotations_used == sources.count("judge") == 0
    assert sources.count("pseudo") == 12
    assert sum(_per_round(metrics, "pairs_this_round")) == 12  # type: ignore[arg-type]
    assert result.state.stop_reason == "pair budget exhausted"
