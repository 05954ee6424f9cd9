"""The Bayesian GPM head: skew-symmetric scores, sphere posterior, ELBO, Borda reward, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _reward_synthetic import LinearBTData

from prefloop.reward.bgpm import BGPMHead, gpm_score
from prefloop.reward.ensemble import EnsembleHead
from prefloop.reward.evaluation import pairwise_accuracy


def _train(head: BGPMHead, data: LinearBTData, rounds: int, steps: int = 40) -> None:
    for rnd in range(rounds):
        head.train_steps(
            data.chosen,
            data.rejected,
            max_steps=steps,
            batch_size=64,
            anchor_weight=0.0,
            generator_seed=rnd,
        )


def test_score_is_the_block_rotation_form_and_skew_symmetric() -> None:
    rng = np.random.default_rng(0)
    a, b = (torch.from_numpy(rng.normal(size=(5, 6))) for _ in range(2))
    r_block = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    r = torch.block_diag(r_block, r_block, r_block)
    expected = ((a @ r.T) * b).sum(-1)  # <R a, b>
    torch.testing.assert_close(gpm_score(a, b), expected)
    torch.testing.assert_close(gpm_score(a, b), -gpm_score(b, a))
    torch.testing.assert_close(gpm_score(a, a), torch.zeros(5, dtype=torch.float64))


def test_learns_a_linear_reward(linear_bt: LinearBTData) -> None:
    head = BGPMHead(32, seed=0)
    args = (linear_bt.test_features, linear_bt.test_scores, linear_bt.test_mask)
    before = pairwise_accuracy(head, *args)["accuracy"]
    _train(head, linear_bt, rounds=3)
    after = pairwise_accuracy(head, *args)
    assert before < 0.7
    assert after["accuracy"] > 0.75
    assert after["spearman"] > 0.6


def test_fits_cyclic_preferences_that_a_scalar_reward_cannot() -> None:
    # rock-paper-scissors: A > B, B > C, C > A. A Bradley-Terry reward gets at most 2 of 3.
    feats = np.eye(3, dtype=np.float32)
    chosen, rejected = feats[[0, 1, 2]], feats[[1, 2, 0]]
    chosen, rejected = np.repeat(chosen, 20, axis=0), np.repeat(rejected, 20, axis=0)
    bgpm = BGPMHead(3, seed=0, embed_dim=2, learning_rate=5e-2)
    ensemble = EnsembleHead(3, seed=0, learning_rate=1e-2)
    for head in (bgpm, ensemble):
        head.train_steps(
            chosen,
            rejected,
            max_steps=150,
            batch_size=60,
            anchor_weight=0.0,
            generator_seed=0,
        )
    won = lambda head: (head.pairwise_logit(feats[[0, 1, 2]], feats[[1, 2, 0]]) > 0).sum()  # noqa: E731
    assert won(bgpm) == 3
    assert won(ensemble) <= 2


def test_pairwise_logit_is_antisymmetric_and_zero_on_the_diagonal(linear_bt: LinearBTData) -> None:
    head = BGPMHead(32, seed=1)
    _train(head, linear_bt, rounds=1)
    a, b = linear_bt.chosen[:30], linear_bt.rejected[:30]
    np.testing.assert_allclose(head.pairwise_logit(a, b), -head.pairwise_logit(b, a), atol=1e-6)
    np.testing.assert_allclose(head.pairwise_logit(a, a), 0.0, atol=1e-6)


def test_posterior_lives_on_the_sphere_with_clamped_variance(linear_bt: LinearBTData) -> None:
    head = BGPMHead(32, seed=2, embed_dim=6)
    pred = head.predict(linear_bt.chosen[:50])
    assert pred.pref_mean is not None and pred.pref_var is not None
    assert pred.pref_mean.shape == (50, 6) and pred.pref_var.shape == (50, 6)
    np.testing.assert_allclose(np.linalg.norm(pred.pref_mean, axis=1), 1.0, atol=1e-6)
    # at init the raw log-variance is ~0, so the variance sits at exp(init_logvar)
    np.testing.assert_allclose(pred.pref_var, np.exp(-5.0), rtol=0.2)
    _train(head, linear_bt, rounds=2)
    var = head.predict(linear_bt.chosen[:50]).pref_var
    assert var is not None
    assert np.all(var >= np.exp(-8.0) * (1 - 1e-6)) and np.all(var <= np.e * (1 + 1e-6))


def test_kl_weight_warms_up_linearly_and_persists_across_rounds(linear_bt: LinearBTData) -> None:
    head = BGPMHead(32, seed=3, max_kl_weight=0.002, kl_warmup_steps=10)
    assert head.kl_weight() == 0.0
    m = head.train_steps(
        linear_bt.chosen,
        linear_bt.rejected,
        max_steps=4,
        batch_size=64,
        anchor_weight=0.0,
        generator_seed=0,
    )
    # the 4 steps used weights 0, 0.2, 0.4, 0.6 of the maximum
    assert m["kl_weight"] == pytest.approx(0.002 * (0 + 0.1 + 0.2 + 0.3) / 4)
    assert head.kl_weight() == pytest.approx(0.002 * 0.4)
    head.train_steps(
        linear_bt.chosen,
        linear_bt.rejected,
        max_steps=8,
        batch_size=64,
        anchor_weight=0.0,
        generator_seed=1,
    )
    assert head.kl_weight() == pytest.approx(0.002)


def test_variance_kl_is_zero_at_the_prior_and_positive_elsewhere() -> None:
    head = BGPMHead(4, seed=0, embed_dim=4, prior_variance=0.03)
    at_prior = torch.full((2, 4), float(np.log(0.03)))
    assert torch.allclose(head.variance_kl(at_prior), torch.zeros(2), atol=1e-6)
    assert bool((head.variance_kl(at_prior + 1.0) > 0).all())
    assert bool((head.variance_kl(at_prior - 1.0) > 0).all())


def test_scalar_mean_is_the_average_score_against_training_responses(
    linear_bt: LinearBTData,
) -> None:
    head = BGPMHead(32, seed=4)
    _train(head, linear_bt, rounds=2)
    trained_on = np.concatenate([linear_bt.chosen, linear_bt.rejected])
    probe = linear_bt.off_distribution[:3]
    borda = [
        head.pairwise_logit(np.repeat(probe[i : i + 1], len(trained_on), 0), trained_on).mean()
        for i in range(3)
    ]
    np.testing.assert_allclose(head.predict(probe).mean, borda, rtol=1e-4, atol=1e-5)


def test_samples_are_posterior_draws_with_matching_std(linear_bt: LinearBTData) -> None:
    head = BGPMHead(32, seed=5, num_samples=20)
    _train(head, linear_bt, rounds=1)
    pred = head.predict(linear_bt.rejected[:12])
    assert pred.samples.shape == (12, 20)
    np.testing.assert_allclose(pred.std, pred.samples.std(axis=1, ddof=1), rtol=1e-5, atol=1e-9)
    assert np.all(pred.std > 0)
    # draws scatter around the posterior-mean reward
    assert np.abs(pred.samples.mean(axis=1) - pred.mean).mean() < 2 * pred.std.mean()
    np.testing.assert_array_equal(pred.samples, head.predict(linear_bt.rejected[:12]).samples)


def test_state_round_trip_resumes_identically(linear_bt: LinearBTData) -> None:
    original = BGPMHead(32, seed=6)
    _train(original, linear_bt, rounds=1, steps=6)
    restored = BGPMHead(32, seed=60)
    restored.load_state_dict(original.state_dict())
    probe = linear_bt.off_distribution[:10]
    p1, p2 = original.predict(probe), restored.predict(probe)
    np.testing.assert_array_equal(p1.samples, p2.samples)
    np.testing.assert_array_equal(p1.pref_mean, p2.pref_mean)
    assert restored.kl_weight() == original.kl_weight()
    _train(original, linear_bt, rounds=1, steps=6)
    _train(restored, linear_bt, rounds=1, steps=6)
    np.testing.assert_array_equal(original.predict(probe).samples, restored.predict(probe).samples)
