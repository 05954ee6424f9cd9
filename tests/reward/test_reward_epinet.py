"""The epinet head: learning, index-driven uncertainty, fixed prior, stop-gradient, resume."""

from __future__ import annotations

import numpy as np
import torch
from _reward_synthetic import LinearBTData

from prefloop.reward.epinet import EpinetHead
from prefloop.reward.evaluation import pairwise_accuracy


def _train(head: EpinetHead, data: LinearBTData, rounds: int) -> None:
    for rnd in range(rounds):
        head.train_steps(
            data.chosen,
            data.rejected,
            max_steps=40,
            batch_size=64,
            anchor_weight=1.0,
            generator_seed=rnd,
        )


def test_learns_a_linear_reward(linear_bt: LinearBTData) -> None:
    head = EpinetHead(32, seed=0)
    args = (linear_bt.test_features, linear_bt.test_scores, linear_bt.test_mask)
    before = pairwise_accuracy(head, *args)["accuracy"]
    _train(head, linear_bt, rounds=4)
    after = pairwise_accuracy(head, *args)
    assert before < 0.7
    assert after["accuracy"] > 0.85
    assert after["spearman"] > 0.75


def test_uncertainty_shrinks_on_seen_data_and_stays_wider_off_it(linear_bt: LinearBTData) -> None:
    head = EpinetHead(32, seed=0)
    seen = linear_bt.test_features.reshape(-1, 32)
    std_before = head.predict(seen).std.mean()
    _train(head, linear_bt, rounds=6)
    std_seen = head.predict(seen).std.mean()
    std_off = head.predict(linear_bt.off_distribution).std.mean()
    assert std_seen < 0.85 * std_before
    assert std_off > 1.1 * std_seen


def test_predictions_use_a_fixed_index_set(linear_bt: LinearBTData) -> None:
    head = EpinetHead(32, seed=1, num_index_samples=16)
    x = linear_bt.off_distribution[:5]
    first, second = head.predict(x), head.predict(x)
    np.testing.assert_array_equal(first.samples, second.samples)
    assert first.samples.shape == (5, 16)
    np.testing.assert_allclose(first.mean, first.samples.mean(axis=1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(first.std, first.samples.std(axis=1, ddof=1), rtol=1e-5, atol=1e-9)
    # the spread comes from the index: every sample differs
    assert np.all(first.std > 0)


def test_prior_network_is_fixed_and_untrained(linear_bt: LinearBTData) -> None:
    head = EpinetHead(32, seed=2)
    prior_before = [p.detach().clone() for p in head.network.prior.parameters()]
    optimised = {id(p) for group in head.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimised for p in head.network.prior.parameters())
    _train(head, linear_bt, rounds=1)
    for before, after in zip(prior_before, head.network.prior.parameters(), strict=True):
        assert torch.equal(before, after)
    # the learnable parts did move
    assert float(head.anchor_penalty().detach()) > 0


def test_epinet_gradient_does_not_reach_the_base_network(linear_bt: LinearBTData) -> None:
    head = EpinetHead(32, seed=3)
    net = head.network
    x = torch.from_numpy(linear_bt.chosen[:16])
    z = torch.randn(4, head.index_dim, generator=torch.Generator().manual_seed(0))
    mu, _ = net.features(x)
    epinet_part = net(x, z) - mu.unsqueeze(0)  # sigma_L + sigma_P only
    epinet_part.pow(2).sum().backward()
    for layer in [*net.trunk, net.base_out]:
        assert layer.weight.grad is not None
        assert float(layer.weight.grad.abs().max()) == 0.0
    assert float(net.epinet_feat.weight.grad.abs().max()) > 0  # type: ignore[union-attr]


def test_state_round_trip_resumes_identically(linear_bt: LinearBTData) -> None:
    original = EpinetHead(32, seed=4)
    _train(original, linear_bt, rounds=1)
    restored = EpinetHead(32, seed=77)
    restored.load_state_dict(original.state_dict())
    probe = linear_bt.off_distribution[:10]
    np.testing.assert_array_equal(original.predict(probe).samples, restored.predict(probe).samples)
    _train(original, linear_bt, rounds=1)
    _train(restored, linear_bt, rounds=1)
    np.testing.assert_array_equal(original.predict(probe).samples, restored.predict(probe).samples)
