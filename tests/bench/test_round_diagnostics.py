"""Per-round selection diagnostics of the label-efficiency bench (issue 12's why-it-loses)."""

from __future__ import annotations

import math

import numpy as np

from prefloop.bench.label_efficiency import RecordingReward, round_selection
from prefloop.engine.roles import RewardScores


def _row(c: float, r: float, cm: str, rm: str) -> dict[str, object]:
    return {"chosen_score": c, "rejected_score": r, "chosen_model": cm, "rejected_model": rm}


def test_round_selection_measures_gap_near_ties_and_model_diversity() -> None:
    rows = [_row(0.9, 0.1, "a", "b"), _row(0.51, 0.50, "a", "c"), _row(0.3, 0.29, "a", "b")]
    out = round_selection(rows, score_range=1.0, num_models=16)
    assert math.isclose(out["round_score_gap"], (0.8 + 0.01 + 0.01) / 3)
    assert math.isclose(out["round_near_tie_share"], 2 / 3)
    assert math.isclose(out["round_model_diversity"], 3 / 6)  # a, b, c of 6 picked slots
    # the same gaps on a 1-10 scale are all near-ties relative to its range
    assert round_selection(rows, score_range=20.0, num_models=16)["round_near_tie_share"] == 1.0
    assert math.isnan(round_selection([], 1.0, 16)["round_score_gap"])


class _FixedReward:
    def __init__(self, std: np.ndarray) -> None:
        self.std = std

    def score(self, items: list, mask: np.ndarray) -> RewardScores:
        z = np.zeros(mask.shape)
        return RewardScores(z, self.std, z[..., None], None, None, None, 0, {})

    def evaluate(self, items: list) -> dict[str, float]:
        return {"accuracy": 0.5}


def test_recording_reward_keeps_the_sigma_spread_of_valid_slots_only() -> None:
    std = np.array([[1.0, 3.0, 99.0], [2.0, 2.0, 99.0]])
    mask = np.array([[True, True, False], [True, True, False]])
    rec = RecordingReward(_FixedReward(std))
    rec.score([], mask)
    mean, cv = rec.sigma[0]
    assert mean == 2.0 and math.isclose(cv, np.std([1.0, 3.0, 2.0, 2.0]) / 2.0)
    assert rec.evaluate([]) == {"accuracy": 0.5}
