"""Issue 7 item 4: the BGPM head is trained on seed labels before a BGPM rule scores anything.

The BGPM reference labels a seed set of random pairs, then scores its first acquisition batch
with the untrained head. Here round 0 of a run with the BGPM head is a warm-up round: random
pairs of the first batch, judged and counted against the budget, trained on; the BGPM rule
selects from round 1 on, from the scores of the trained head (model version 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _loop import run_loop

from prefloop.acquisition import AcquisitionInput, Selection
from prefloop.engine.round_engine import Roles

pytestmark = pytest.mark.model


class Recorder:
    """Wraps the reward and acquisition roles: which rule ran on which model version."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.version = -1

    def wrap(self, roles: Roles) -> None:
        reward, acquisition = roles.reward, roles.acquisition
        recorder = self

        class Reward:
            def score(self, items: Any, mask: np.ndarray) -> Any:
                scores = reward.score(items, mask)
                recorder.version = scores.model_version
                return scores

            def evaluate(self, items: Any) -> dict[str, float]:
                return reward.evaluate(items)

        class Acquisition:
            def select(
                self, inputs: AcquisitionInput, *, method: str, params: dict[str, Any], seed: int
            ) -> Selection:
                recorder.calls.append((method, recorder.version))
                return acquisition.select(inputs, method=method, params=params, seed=seed)

        roles.reward = Reward()
        roles.acquisition = Acquisition()


def test_round_zero_trains_on_random_seed_labels_within_the_budget(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    recorder = Recorder()
    ov = [
        *small_overrides,
        "spec.rewardModel.head.kind=bgpm",
        "spec.acquisition.method=bgpm_mv",
        "spec.acquisition.params={}",
        "spec.budget.maxAnnotations=12",
    ]
    result = run_loop(repo_root, tmp_path / "bgpm", ov, wrap_roles=recorder.wrap)
    metrics = result.state.metrics
    assert recorder.calls == [("random", 0), ("bgpm_mv", 1)]
    assert [m["warmup"] for m in metrics] == [True, False]
    assert [m["acquisition_method"] for m in metrics] == ["random", "bgpm_mv"]
    assert [m["annotations_this_round"] for m in metrics] == [8, 4]  # seed labels are paid for
    by_round = [{r["acquisition"] for r in result.rows if r["round"] == k} for k in (0, 1)]
    assert by_round == [{"random"}, {"bgpm_mv"}]
    assert result.state.stop_reason == "annotation budget exhausted"
