"""Labels-to-reach-Random with a bootstrap CI over seeds, on curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefloop.bench.stats import (
    StatsInputError,
    annotations_to_reach,
    first_crossing,
    labels_to_reach_ci,
)


def test_first_crossing_agrees_with_the_scalar_rule() -> None:
    rng = np.random.default_rng(0)
    x = np.tile(np.arange(1, 9, dtype=float) * 10, (200, 1))
    y = np.cumsum(rng.uniform(-0.2, 1.0, size=x.shape), axis=1)
    target = rng.uniform(0, 6, size=200)
    got = first_crossing(x, y, target)
    want = np.array([annotations_to_reach(x[i], y[i], target[i]) for i in range(200)])
    np.testing.assert_allclose(got, want, equal_nan=True)
    assert np.isnan(got).any() and np.isfinite(got).any()


def _curves(slope: float, seeds: int, noise: float, rng: np.random.Generator) -> tuple:
    x = np.tile(np.arange(1, 9, dtype=float) * 16, (seeds, 1))  # 16 .. 128 labels
    y = np.minimum(0.5 + slope * x / 128, 0.9) + rng.normal(0, noise, size=x.shape)
    return x, y


def test_a_method_twice_as_fast_needs_half_the_labels_and_its_ci_brackets_it() -> None:
    rng = np.random.default_rng(1)
    rx, ry = _curves(0.2, 8, 0.01, rng)  # Random ends at 0.7 with 128 labels
    mx, my = _curves(0.4, 8, 0.01, rng)  # reaches 0.7 at 64 labels
    out = labels_to_reach_ci(mx, my, rx, ry, np.random.default_rng(2), n_resamples=500)
    assert out["ratio"] == pytest.approx(0.5, abs=0.05)
    assert out["ratio_low"] <= out["ratio"] <= out["ratio_high"]
    assert out["ratio_high"] < 0.7 and out["reached_share"] == 1.0
    again = labels_to_reach_ci(mx, my, rx, ry, np.random.default_rng(2), n_resamples=500)
    assert again == out  # seeded


def test_a_method_that_never_gets_there_has_an_infinite_upper_bound() -> None:
    rng = np.random.default_rng(3)
    rx, ry = _curves(0.2, 8, 0.01, rng)
    mx, my = _curves(0.1, 8, 0.01, rng)  # ends at 0.6 < 0.7
    out = labels_to_reach_ci(mx, my, rx, ry, np.random.default_rng(4), n_resamples=300)
    assert math.isnan(out["ratio"]) and out["ratio_high"] == math.inf
    assert out["reached_share"] == 0.0
    with pytest.raises(StatsInputError, match="same seeds"):
        labels_to_reach_ci(mx[:4], my[:4], rx, ry, rng)
