"""``evaluation.shadowRandom``: the run's summary and plot carry Random on the same prompts,
which is exactly a Random run with the same seed, model and budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _loop import run_loop
from PIL import Image

pytestmark = pytest.mark.model


def _accuracies(path: Path) -> list[float]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [r["heldout_accuracy"] for r in rows]


def test_shadow_random_is_the_random_run_on_the_same_prompts(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    base = [*small_overrides, "spec.budget.maxAnnotations=16"]
    pool = [
        *base,
        "spec.acquisition.scope=pool",
        "spec.acquisition.method=drts",
        "spec.evaluation.shadowRandom=true",
    ]
    run_loop(repo_root, tmp_path / "pool", pool)
    reference = run_loop(
        repo_root,
        tmp_path / "random",
        [*base, "spec.acquisition.method=random", "spec.acquisition.params={}"],
    )

    shadow = _accuracies(tmp_path / "pool" / "shadow-random" / "metrics.jsonl")
    assert shadow == [m["heldout_accuracy"] for m in reference.state.metrics]
    summary = json.loads((tmp_path / "pool" / "summary.json").read_text())
    assert summary["shadow_random"]["final_heldout_accuracy"] == shadow[-1]
    assert summary["shadow_random"]["annotations_used"] == 16
    own = _accuracies(tmp_path / "pool" / "metrics.jsonl")
    reach = summary["shadow_random"]["annotations_to_reach_random"]
    if max(own) >= shadow[-1]:
        assert reach in (8, 16)
    else:
        assert reach is None
    assert "Random on the same prompts" in (tmp_path / "pool" / "summary.md").read_text()
    with Image.open(tmp_path / "pool" / "learning_curve.png") as im:
        im.verify()
    assert not (tmp_path / "random" / "shadow-random").exists()  # off by default
