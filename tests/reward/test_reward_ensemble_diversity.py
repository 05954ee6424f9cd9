"""Ensemble diversity options: randomized prior functions and the Bayesian bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _reward_synthetic import LinearBTData

from prefloop.reward.ensemble import DiversifiedEnsemble, EnsembleHead
from prefloop.reward.heads import head_from_state


def _train(head: EnsembleHead, data: LinearBTData, rounds: int = 3) -> None:
    for rnd in range(rounds):
        head.train_steps(
            data.chosen, data.rejected,
            max_steps=20, batch_size=64, anchor_weight=0.01, generator_seed=rnd,
        )  # fmt: skip


def test_a_plain_ensemble_is_unchanged_and_its_checkpoint_config_has_no_new_keys() -> None:
    plain = EnsembleHead(32, seed=4, num_heads=4)
    prior = EnsembleHead(32, seed=4, num_heads=4, random_prior_scale=1.0)
    assert not isinstance(plain.network, DiversifiedEnsemble)
    assert set(plain.config()).isdisjoint({"random_prior_scale", "bootstrap"})
    # the trainable members start where the plain ensemble's do
    assert isinstance(prior.network, DiversifiedEnsemble)
    for a, b in zip(plain.network.parameters(), prior.network.members.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_random_prior_is_frozen_and_added_to_every_member(linear_bt: LinearBTData) -> None:
    head = EnsembleHead(32, seed=1, num_heads=4, random_prior_scale=2.0)
    assert isinstance(head.network, DiversifiedEnsemble)
    before = [p.clone() for p in head.network.prior.parameters()]
    _train(head, linear_bt, rounds=1)
    for p, q in zip(head.network.prior.parameters(), before, strict=True):
        assert torch.equal(p, q)
    x = torch.from_numpy(linear_bt.off_distribution[:5]).float()
    with torch.no_grad():
        expected = head.network.members(x) + 2.0 * head.network.prior(x)
    assert np.allclose(head.predict(linear_bt.off_distribution[:5]).samples, expected.T.numpy())


def test_a_random_prior_keeps_members_apart_off_the_data(linear_bt: LinearBTData) -> None:
    plain = EnsembleHead(32, seed=2, num_heads=8)
    prior = EnsembleHead(32, seed=2, num_heads=8, random_prior_scale=3.0)
    _train(plain, linear_bt)
    _train(prior, linear_bt)
    off = linear_bt.off_distribution
    assert prior.predict(off).std.mean() > 1.5 * plain.predict(off).std.mean()
    acc_plain = (plain.pairwise_logit(linear_bt.chosen, linear_bt.rejected) > 0).mean()
    acc_prior = (prior.pairwise_logit(linear_bt.chosen, linear_bt.rejected) > 0).mean()
    assert acc_prior > acc_plain - 0.05  # the prior does not stop it from fitting


def test_bootstrap_weights_are_fixed_per_pair_symmetric_and_differ_by_member(
    linear_bt: LinearBTData,
) -> None:
    head = EnsembleHead(32, seed=3, num_heads=6, bootstrap=True)
    net = head.network
    assert isinstance(net, DiversifiedEnsemble)
    c = torch.from_numpy(linear_bt.chosen).float()
    r = torch.from_numpy(linear_bt.rejected).float()
    w = net.bootstrap_weights(c, r)
    assert w.shape == (6, c.shape[0]) and bool((w > 0).all())
    assert torch.allclose(w, net.bootstrap_weights(r, c))
    assert torch.allclose(w[:, 10:20], net.bootstrap_weights(c[10:20], r[10:20]))
    assert float(w.mean()) == pytest.approx(1.0, abs=0.1)  # Exp(1)
    assert float(w.std()) == pytest.approx(1.0, abs=0.15)
    corr = np.corrcoef(w.numpy())
    assert np.abs(corr[np.triu_indices(6, 1)]).max() < 0.3  # members see different weights


def test_bootstrap_members_disagree_more_and_the_state_round_trips(
    linear_bt: LinearBTData,
) -> None:
    plain = EnsembleHead(32, seed=5, num_heads=8)
    boot = EnsembleHead(32, seed=5, num_heads=8, bootstrap=True)
    _train(plain, linear_bt)
    _train(boot, linear_bt)
    seen = np.concatenate([linear_bt.chosen, linear_bt.rejected])
    assert boot.predict(seen).std.mean() > plain.predict(seen).std.mean()
    again = head_from_state(boot.state_dict())
    assert isinstance(again, EnsembleHead) and again.bootstrap
    assert np.array_equal(again.predict(seen).samples, boot.predict(seen).samples)
