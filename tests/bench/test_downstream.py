"""The downstream Bradley-Terry probe learns a known linear preference."""

from __future__ import annotations

import numpy as np
import pytest

from prefloop.bench.downstream import (
    BradleyTerryProbe,
    DownstreamInputError,
    downstream_accuracy,
    heldout_pairwise_accuracy,
)


def _bt_data(rng: np.random.Generator, n: int, d: int, w: np.ndarray) -> tuple[np.ndarray, ...]:
    a = rng.standard_normal((n, d))
    b = rng.standard_normal((n, d))
    p_a = 1 / (1 + np.exp(-(a - b) @ w))
    a_wins = rng.uniform(size=n) < p_a
    chosen = np.where(a_wins[:, None], a, b)
    rejected = np.where(a_wins[:, None], b, a)
    return chosen, rejected


def test_probe_learns_synthetic_bt_preferences() -> None:
    rng = np.random.default_rng(0)
    d = 8
    w = rng.standard_normal(d) * 2
    chosen, rejected = _bt_data(rng, 400, d, w)
    feats = rng.standard_normal((30, 6, d))
    scores = feats @ w
    mask = np.ones((30, 6), dtype=bool)
    out = downstream_accuracy(chosen, rejected, feats, scores, mask, seed=3)
    assert out["accuracy"] > 0.8
    assert out["spearman"] > 0.6
    assert out["num_pairs"] == 30 * 15
    again = downstream_accuracy(chosen, rejected, feats, scores, mask, seed=3)
    assert again["accuracy"] == out["accuracy"]


def test_heldout_accuracy_counts_ties_half_and_skips_equal_scores() -> None:
    rewards = np.array([[1.0, 1.0, 0.0]])
    scores = np.array([[2.0, 1.0, 1.0]])
    out = heldout_pairwise_accuracy(rewards, scores, np.ones((1, 3), dtype=bool))
    # pairs (0,1): tie in reward -> 0.5; (0,2): right -> 1; (1,2): equal scores -> skipped
    assert out["num_pairs"] == 2
    assert out["accuracy"] == pytest.approx(0.75)


def test_probe_rejects_wrong_width() -> None:
    probe = BradleyTerryProbe(4, seed=0)
    with pytest.raises(DownstreamInputError, match="expected"):
        probe.fit(np.zeros((3, 5)), np.zeros((3, 5)))


def test_decisive_accuracy_leaves_out_near_ties() -> None:
    # prompt 0: a decisive pair the model gets right and a near-tie (gap 0.01) it gets wrong
    scores = np.array([[0.0, 1.0, 0.01]])
    rewards = np.array([[0.0, 1.0, -1.0]])
    out = heldout_pairwise_accuracy(rewards, scores, np.ones((1, 3), dtype=bool))
    # pairs: (0,1) right, (0,2) near-tie wrong, (1,2) decisive right
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["decisive_accuracy"] == 1.0
    assert out["num_decisive_pairs"] == 2.0
