"""Source-model strengths: the Bradley-Terry/Laplace fit and how it is added to the estimates."""

from __future__ import annotations

import numpy as np
import pytest

from prefloop.engine.roles import RewardScores
from prefloop.reward.source_strength import (
    SourceStrengthError,
    fit_source_strengths,
    with_source_strengths,
)


def _duels(true: dict[str, float], n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    names = list(true)
    winners, losers = [], []
    for _ in range(n):
        a, b = rng.choice(len(names), size=2, replace=False)
        p = 1 / (1 + np.exp(-(true[names[a]] - true[names[b]])))
        w, lo = (a, b) if rng.random() < p else (b, a)
        winners.append(names[w])
        losers.append(names[lo])
    return winners, losers


def test_fit_recovers_the_true_strengths_and_their_order() -> None:
    true = {"strong": 2.0, "mid": 0.5, "weak": -1.0, "worst": -1.5}
    winners, losers = _duels(true, 4000, seed=0)
    fit = fit_source_strengths(winners, losers, prior_precision=0.01)
    est = dict(zip(fit.models, fit.mean, strict=True))
    centred_true = {k: v - np.mean(list(true.values())) for k, v in true.items()}
    centred_est = {k: v - np.mean(fit.mean) for k, v in est.items()}
    for name in true:
        assert centred_est[name] == pytest.approx(centred_true[name], abs=0.15)
    assert sorted(est, key=est.__getitem__) == ["worst", "weak", "mid", "strong"]


def test_posterior_variance_shrinks_with_data_and_unseen_models_keep_the_prior() -> None:
    true = {"a": 1.0, "b": 0.0, "c": -1.0}
    few = fit_source_strengths(*_duels(true, 20, seed=1), prior_precision=2.0)
    many = fit_source_strengths(*_duels(true, 2000, seed=1), prior_precision=2.0)
    assert (np.diag(many.covariance) < np.diag(few.covariance)).all()
    assert (np.diag(few.covariance) < 1 / 2.0).all()  # data only ever adds precision
    theta, var, idx = many.lookup(np.array([["a", "never-judged"]], dtype=object))
    assert idx.tolist() == [[0, -1]]
    assert theta[0, 1] == 0.0 and var[0, 1] == pytest.approx(0.5)
    assert theta[0, 0] == pytest.approx(many.mean[0])


def test_fit_is_deterministic_and_ignores_self_pairs_and_empty_input() -> None:
    winners, losers = _duels({"x": 1.0, "y": 0.0}, 50, seed=2)
    one = fit_source_strengths(winners, losers)
    two = fit_source_strengths([*winners, "x"], [*losers, "x"])  # x vs x says nothing
    assert one.models == two.models == ("x", "y")
    np.testing.assert_array_equal(one.mean, two.mean)
    np.testing.assert_array_equal(one.covariance, two.covariance)
    empty = fit_source_strengths([], [], prior_precision=4.0)
    assert empty.models == ()
    theta, var, _ = empty.lookup(np.array(["x"], dtype=object))
    assert theta.tolist() == [0.0] and var.tolist() == [0.25]


def test_fit_rejects_bad_input_with_a_clear_message() -> None:
    with pytest.raises(SourceStrengthError, match="2 winners but 1 losers"):
        fit_source_strengths(["a", "b"], ["c"])
    with pytest.raises(SourceStrengthError, match="prior_precision must be > 0"):
        fit_source_strengths(["a"], ["b"], prior_precision=0.0)
    with pytest.raises(SourceStrengthError, match="weights"):
        fit_source_strengths(["a"], ["b"], weights=[-1.0])


def _scores(p: int, n: int, s: int) -> RewardScores:
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(p, n, s))
    return RewardScores(
        mean=samples.mean(axis=2),
        std=samples.std(axis=2),
        samples=samples,
        features=None,
        pref_mean=None,
        pref_var=None,
        model_version=1,
    )


def test_strengths_shift_mean_widen_std_and_move_every_sample_jointly() -> None:
    fit = fit_source_strengths(*_duels({"good": 1.5, "bad": -1.5}, 300, seed=4))
    models = np.array([["good", "bad", "new"], ["bad", "good", ""]], dtype=object)
    mask = np.array([[True, True, True], [True, True, False]])
    base = _scores(2, 3, 4000)
    out = with_source_strengths(base, models, mask, fit, weight=2.0, seed=7)
    theta, var, _ = fit.lookup(models)
    expect_mean = base.mean + 2.0 * np.where(mask, theta, 0.0)
    np.testing.assert_allclose(out.mean, expect_mean)
    np.testing.assert_allclose(out.std, np.sqrt(base.std**2 + 4.0 * np.where(mask, var, 0.0)))
    assert out.mean[1, 2] == base.mean[1, 2] and out.std[1, 2] == base.std[1, 2]  # padding
    shift = out.samples - base.samples
    np.testing.assert_allclose(shift.mean(axis=2)[mask], 2.0 * theta[mask], atol=0.1)
    np.testing.assert_allclose(shift[0, 0], shift[1, 1], atol=1e-12)  # one draw per sample
    np.testing.assert_array_equal(shift[1, 2], 0.0)
    again = with_source_strengths(base, models, mask, fit, weight=2.0, seed=7)
    np.testing.assert_array_equal(again.samples, out.samples)


def test_strengths_refuse_mismatched_shapes() -> None:
    fit = fit_source_strengths(["a"], ["b"])
    with pytest.raises(SourceStrengthError, match="same \\(prompts, responses\\) shape"):
        with_source_strengths(
            _scores(2, 3, 4),
            np.array([["a", "b"]], dtype=object),
            np.ones((1, 2), bool),
            fit,
            weight=1.0,
            seed=0,
        )
