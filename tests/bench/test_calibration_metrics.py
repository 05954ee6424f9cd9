"""Calibration metrics of ``prefloop bench calibration`` on inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from prefloop.bench.calibration_metrics import (
    CalibrationInputError,
    centred_errors,
    head_calibration,
    heldout_pairs,
    preference_nll,
    reliability_bins,
)
from prefloop.reward.base import RewardPrediction


def test_a_calibrated_probability_has_near_zero_ece_and_an_overconfident_one_does_not() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.0, 1.0, 200_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    ece, rows = reliability_bins(p, y, 10)
    assert ece < 0.01
    assert sum(r["count"] for r in rows) == p.size
    for r in rows:
        assert r["confidence"] == pytest.approx(r["accuracy"], abs=0.02)
    sharp = np.where(p > 0.5, 0.99, 0.01)  # same ranking, claims 99 %
    ece_sharp, _ = reliability_bins(sharp, y, 10)
    assert ece_sharp > 0.2


def test_nll_is_log2_at_one_half_and_lower_for_the_true_probability() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 50_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    assert preference_nll(np.full(p.size, 0.5), y) == pytest.approx(np.log(2))
    assert preference_nll(p, y) < np.log(2) - 0.05
    with pytest.raises(CalibrationInputError, match="prob"):
        preference_nll(p, y[:-1])


def test_errors_ignore_a_per_prompt_shift_and_a_global_scale() -> None:
    scores = np.array([[1.0, 2.0, 4.0], [7.0, 8.0, np.nan]])
    mask = np.array([[True, True, True], [True, True, False]])
    mean = 0.5 * scores + np.array([[10.0], [-3.0]])  # shifted per prompt, scaled by 1/2
    err = centred_errors(np.nan_to_num(mean), scores, mask)
    assert np.allclose(err[mask], 0.0)
    assert np.isnan(err[1, 2])


def test_heldout_pairs_skip_ties_padding_and_orient_by_the_judge() -> None:
    scores = np.array([[3.0, 1.0, 3.0], [2.0, 5.0, np.nan]])
    mask = np.array([[True, True, True], [True, True, False]])
    pairs = heldout_pairs(scores, mask)
    got = set(zip(pairs.prompt, pairs.first, pairs.second, pairs.outcome, strict=True))
    assert got == {(0, 0, 1, 1.0), (0, 1, 2, 0.0), (1, 0, 1, 0.0)}


class OracleNoiseHead:
    """mu = score + noise, sigma = |noise| + a little: sigma predicts the error by design."""

    def __init__(self, table: dict[float, tuple[float, float]]) -> None:
        self.table = table  # feature value -> (mean, std)

    def predict(self, features: np.ndarray) -> RewardPrediction:
        mean = np.array([self.table[float(f[0])][0] for f in features])
        std = np.array([self.table[float(f[0])][1] for f in features])
        z = np.array([-1.0, 1.0, -0.5, 0.5])
        return RewardPrediction(mean, std, mean[:, None] + std[:, None] * z)

    def pairwise_logit(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.predict(a).mean - self.predict(b).mean

    def pairwise_logit_samples(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.predict(a).samples - self.predict(b).samples


def test_sigma_that_tracks_the_error_gets_a_positive_rank_correlation() -> None:
    rng = np.random.default_rng(2)
    p, n = 40, 16
    scores = rng.normal(size=(p, n)) * 2
    noise = rng.normal(size=(p, n)) * rng.uniform(0.1, 3.0, size=(p, n))
    feats = np.arange(p * n, dtype=float).reshape(p, n, 1)
    table = {
        float(feats[i, j, 0]): (scores[i, j] + noise[i, j], abs(noise[i, j]) + 0.01)
        for i in range(p)
        for j in range(n)
    }
    mask = np.ones((p, n), dtype=bool)
    good, bins = head_calibration(OracleNoiseHead(table), feats, scores, mask)
    assert good["sigma_error_spearman"] > 0.3, good
    assert good["pair_sigma_error_spearman"] > 0.04, good
    assert 0.5 < good["accuracy"] <= 1.0
    assert len(bins) == 10
    shuffled = {k: (m, table[float(rng.choice(feats.ravel()))][1]) for k, (m, _) in table.items()}
    blind, _ = head_calibration(OracleNoiseHead(shuffled), feats, scores, mask)
    assert abs(blind["sigma_error_spearman"]) < 0.2
    assert blind["accuracy"] == pytest.approx(good["accuracy"])
