"""Statistics of the bench on constructed inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefloop.bench.stats import (
    StatsInputError,
    annotations_to_reach,
    auc,
    bootstrap_ci,
    efficiency_ratio,
    holm,
    value_at,
    wilcoxon_vs_reference,
)


def test_holm_known_values() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])


def test_holm_keeps_nan_out_of_the_family() -> None:
    out = holm(np.array([0.01, np.nan, 0.02]))
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.02])


def test_wilcoxon_sign_and_floor() -> None:
    ref = np.zeros(5)
    better = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    med, p_greater = wilcoxon_vs_reference(better, ref, "greater")
    assert med == pytest.approx(0.3)
    assert p_greater == pytest.approx(1 / 32)
    _, p_less = wilcoxon_vs_reference(better, ref, "less")
    assert p_less > 0.9
    _, p_two = wilcoxon_vs_reference(better, ref)
    assert p_two == pytest.approx(2 / 32)
    assert wilcoxon_vs_reference(ref, ref) == (0.0, 1.0)


def test_wilcoxon_rejects_unpaired() -> None:
    with pytest.raises(StatsInputError):
        wilcoxon_vs_reference(np.zeros(3), np.zeros(4))


def test_auc_is_mean_height() -> None:
    assert auc(np.array([0, 10]), np.array([0.0, 1.0])) == pytest.approx(0.5)
    assert auc(np.array([0, 5, 10]), np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert auc(np.array([3]), np.array([0.7])) == pytest.approx(0.7)


def test_annotations_to_reach_interpolates() -> None:
    x = np.array([10, 20, 30])
    y = np.array([0.5, 0.6, 0.8])
    assert annotations_to_reach(x, y, 0.7) == pytest.approx(25.0)
    assert annotations_to_reach(x, y, 0.4) == pytest.approx(10.0)
    assert math.isnan(annotations_to_reach(x, y, 0.9))
    assert value_at(x, y, 25) == pytest.approx(0.7)
    assert math.isnan(value_at(x, y, 40))


def test_efficiency_ratio() -> None:
    assert efficiency_ratio(50, 100) == pytest.approx(0.5)
    assert math.isnan(efficiency_ratio(float("nan"), 100))
    assert math.isnan(efficiency_ratio(10, 0))


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    d = np.array([0.1, 0.2, 0.15, 0.05, 0.12])
    a = bootstrap_ci(d, np.random.default_rng(1), n_resamples=2000)
    b = bootstrap_ci(d, np.random.default_rng(1), n_resamples=2000)
    assert a == b
    assert a[0] <= d.mean() <= a[1]
    assert a[0] > 0
