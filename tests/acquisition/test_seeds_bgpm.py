"""BGPM: closed-form moments vs Monte Carlo, BALD, UCB and the three batch strategies."""

from __future__ import annotations

import numpy as np
import pytest

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput
from prefloop.acquisition.bgpm import (
    bald_scores,
    bgpm_bald,
    bgpm_mv,
    bgpm_ucb,
    preference_moments,
    skew_score,
    swap_blocks,
)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def pref_batch(p: int, n: int, d: int, seed: int, var_scale: float = 0.1) -> AcquisitionInput:
    g = np.random.default_rng(seed)
    mean = g.normal(size=(p, n))
    return AcquisitionInput(
        mean=mean,
        std=np.ones_like(mean),
        mask=np.ones((p, n), bool),
        pref_mean=unit(g.normal(size=(p, n, d))),
        pref_var=g.uniform(0.2, 1.0, (p, n, d)) * var_scale,
    )


def test_skew_score_is_antisymmetric_and_matches_the_block_matrix() -> None:
    g = np.random.default_rng(0)
    a, b = g.normal(size=(5, 6)), g.normal(size=(5, 6))
    r = np.zeros((6, 6))
    for i in range(0, 6, 2):
        r[i, i + 1], r[i + 1, i] = -1.0, 1.0
    np.testing.assert_allclose(skew_score(a, b), np.einsum("nd,nd->n", a @ r.T, b))
    np.testing.assert_allclose(skew_score(a, b), -skew_score(b, a))
    assert swap_blocks(np.arange(6.0)).tolist() == [1, 0, 3, 2, 5, 4]


def test_closed_form_moments_match_monte_carlo_of_the_unnormalised_gaussian() -> None:
    g = np.random.default_rng(1)
    mu_i, mu_j = unit(g.normal(size=(1, 6))), unit(g.normal(size=(1, 6)))
    var_i, var_j = g.uniform(0.05, 0.3, (1, 6)), g.uniform(0.05, 0.3, (1, 6))
    mean, var = preference_moments(mu_i, mu_j, var_i, var_j)
    draws = 200_000
    vi = mu_i + g.standard_normal((draws, 6)) * np.sqrt(var_i)
    vj = mu_j + g.standard_normal((draws, 6)) * np.sqrt(var_j)
    s = skew_score(vi, vj)
    assert mean[0] == pytest.approx(s.mean(), abs=4 * s.std() / np.sqrt(draws))
    assert var[0] == pytest.approx(s.var(), rel=0.02)


def test_bald_is_zero_for_a_deterministic_posterior_and_positive_when_draws_disagree() -> None:
    g = np.random.default_rng(2)
    mu_i, mu_j = unit(g.normal(size=(4, 4))), unit(g.normal(size=(4, 4)))
    zero = np.zeros((4, 4))
    np.testing.assert_allclose(bald_scores(mu_i, mu_j, zero, zero, g), 0.0, atol=1e-9)
    # Orthogonal-in-R means (E[s] = 0) with wide posteriors: draws land on both sides.
    a = np.array([[1.0, 0.0, 0.0, 0.0]])
    b = np.array([[1.0, 0.0, 0.0, 0.0]])
    wide = np.full((1, 4), 0.5)
    assert bald_scores(a, b, wide, wide, g)[0] > 0.2


def test_mv_picks_the_highest_variance_pair_and_is_symmetric() -> None:
    inputs = pref_batch(1, 4, 4, seed=3)
    sel = bgpm_mv(inputs, np.random.default_rng(0), selection="top_k", max_pairs=6)
    assert sel.size == 6
    assert np.all(np.diff(sel.score) <= 0)
    pm, pv = inputs.pref_mean, inputs.pref_var
    assert pm is not None and pv is not None
    i, j = sel.first[0], sel.second[0]
    _, v_ij = preference_moments(pm[0, [i]], pm[0, [j]], pv[0, [i]], pv[0, [j]])
    _, v_ji = preference_moments(pm[0, [j]], pm[0, [i]], pv[0, [j]], pv[0, [i]])
    assert sel.score[0] == pytest.approx(v_ij[0]) == pytest.approx(v_ji[0])


def test_ucb_adds_the_absolute_mean_to_the_std() -> None:
    # Unit means and equal variances, so Var[s] is the same for every pair; |E[s]| is 1 for
    # (0, 1), 0.8 for (0, 2) and 0.6 for (1, 2).
    pref_mean = np.array([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]])
    pref_var = np.full((1, 3, 2), 0.01)
    inputs = AcquisitionInput(
        mean=np.zeros((1, 3)),
        std=np.ones((1, 3)),
        mask=np.ones((1, 3), bool),
        pref_mean=pref_mean,
        pref_var=pref_var,
    )
    ucb = bgpm_ucb(inputs, np.random.default_rng(0), selection="top_k", max_pairs=3, kappa=2.0)
    mean, var = preference_moments(
        pref_mean[0, [0]], pref_mean[0, [1]], pref_var[0, [0]], pref_var[0, [1]]
    )
    assert list(zip(ucb.first.tolist(), ucb.second.tolist(), strict=True)) == [
        (0, 1),
        (0, 2),
        (1, 2),
    ]
    assert ucb.score[0] == pytest.approx(abs(mean[0]) + 2.0 * np.sqrt(var[0]))
    np.testing.assert_allclose(ucb.score - ucb.score[0], [0.0, -0.2, -0.4], atol=1e-12)
    mv = bgpm_mv(inputs, np.random.default_rng(0), selection="top_k", max_pairs=3)
    np.testing.assert_allclose(mv.score, 0.01 + 0.01 + 2 * 0.01**2)  # MV ignores the mean


def test_selection_modes() -> None:
    inputs = pref_batch(5, 4, 4, seed=4)
    per = bgpm_mv(inputs, np.random.default_rng(0))
    assert sorted(per.prompt_index.tolist()) == [0, 1, 2, 3, 4]
    top = bgpm_mv(inputs, np.random.default_rng(0), selection="top_k", max_pairs=8)
    assert top.size == 8
    assert np.bincount(top.prompt_index).max() > 1  # several pairs of one prompt are allowed
    div = bgpm_bald(inputs, np.random.default_rng(0), selection="cluster_diverse", max_pairs=9)
    triples = set(
        zip(div.prompt_index.tolist(), div.first.tolist(), div.second.tolist(), strict=True)
    )
    assert len(triples) == 9
    assert div.info["clusters"] == 3
    assert sum(div.info["allocation"]) == 9
    again = bgpm_bald(inputs, np.random.default_rng(0), selection="cluster_diverse", max_pairs=9)
    assert np.array_equal(div.first, again.first) and np.array_equal(div.score, again.score)


def test_bad_pref_inputs_raise() -> None:
    inputs = pref_batch(2, 3, 3, seed=5)
    with pytest.raises(AcquisitionError, match="even"):
        bgpm_mv(inputs, np.random.default_rng(0))
    good = pref_batch(2, 3, 4, seed=5)
    no_var = AcquisitionInput(
        mean=good.mean, std=good.std, mask=good.mask, pref_mean=good.pref_mean
    )
    with pytest.raises(AcquisitionError, match="pref_var"):
        bgpm_ucb(no_var, np.random.default_rng(0))
    with pytest.raises(AcquisitionError, match="selection"):
        bgpm_mv(good, np.random.default_rng(0), selection="best")
