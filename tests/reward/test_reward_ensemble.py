"""The anchored deep ensemble: exact loss, learning, uncertainty, anchoring, centring, resume."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from _reward_synthetic import LinearBTData, make_linear_bt
from torch import nn

from prefloop.reward.ensemble import EnsembleHead
from prefloop.reward.evaluation import pairwise_accuracy


def _train(head: EnsembleHead, data: LinearBTData, rounds: int, anchor: float = 1.0) -> None:
    for rnd in range(rounds):
        head.train_steps(
            data.chosen,
            data.rejected,
            max_steps=20,
            batch_size=64,
            anchor_weight=anchor,
            generator_seed=rnd,
        )


def _per_head_sequentials(head: EnsembleHead) -> list[nn.Sequential]:
    """The K heads as plain nn.Sequential MLPs, copied out of the batched tensors."""
    net = head.network
    models = []
    for k in range(head.num_heads):
        layers: list[nn.Module] = []
        for w, b in zip(net.weights, net.biases, strict=True):
            lin = nn.Linear(w.shape[1], w.shape[2])
            lin.weight.data = w[k].detach().T.clone()
            lin.bias.data = b[k].detach().clone()
            layers += [lin, nn.ReLU()]
        out = nn.Linear(head.hidden_dim, 1, bias=False)
        out.weight.data = net.output[k].detach().T.clone()
        layers.append(out)
        models.append(nn.Sequential(*layers))
    return models


def test_architecture_and_init_follow_the_reference() -> None:
    head = EnsembleHead(48, seed=3, num_heads=5, hidden_dim=16, num_layers=2)
    net = head.network
    shapes = [tuple(w.shape) for w in net.weights] + [tuple(net.output.shape)]
    assert shapes == [(5, 48, 16), (5, 16, 16), (5, 16, 1)]
    assert all(float(b.detach().abs().max()) == 0.0 for b in net.biases)
    bound = math.sqrt(6.0 / (48 + 16))
    largest = float(net.weights[0].detach().abs().max())
    assert 0.9 * bound < largest <= bound  # uniform on [-bound, bound] fills its range
    # heads differ (the only source of diversity is the init)
    assert not torch.equal(net.weights[0][0], net.weights[0][1])


def test_batched_forward_and_loss_equal_the_per_head_formula(linear_bt: LinearBTData) -> None:
    head = EnsembleHead(32, seed=1, num_heads=4, hidden_dim=8)
    _train(head, linear_bt, rounds=1)  # move away from the anchor so every term is non-zero
    c = torch.from_numpy(linear_bt.chosen[:10])
    r = torch.from_numpy(linear_bt.rejected[:10])
    models = _per_head_sequentials(head)
    with torch.no_grad():
        batched = head.network(c)
        looped = torch.stack([m(c).squeeze(-1) for m in models])
        torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)

        lam = 0.7
        bt, centre, anchor = [], [], []
        anchors = head.anchors
        for k, m in enumerate(models):
            rc, rr = m(c).squeeze(-1), m(r).squeeze(-1)
            bt.append(-torch.nn.functional.logsigmoid(rc - rr).mean())
            centre.append(((rc + rr) ** 2).mean())
            now = torch.cat([p[k].reshape(-1) for p in head.network.parameters()])
            init = torch.cat([a[k].reshape(-1) for a in anchors])
            anchor.append(((now - init) ** 2).mean())
        expected = (
            torch.stack(bt).mean()
            + lam * torch.stack(anchor).mean()
            + 0.01 * torch.stack(centre).mean()
        )
        data_loss, _ = head.pair_loss(c, r, torch.Generator())
        got = data_loss + lam * head.anchor_penalty()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_learns_a_linear_reward(linear_bt: LinearBTData) -> None:
    head = EnsembleHead(32, seed=0)
    args = (linear_bt.test_features, linear_bt.test_scores, linear_bt.test_mask)
    before = pairwise_accuracy(head, *args)["accuracy"]
    _train(head, linear_bt, rounds=5)
    after = pairwise_accuracy(head, *args)
    assert before < 0.7
    assert after["accuracy"] > 0.85
    assert after["spearman"] > 0.75


def test_std_is_small_where_data_was_seen_and_wide_off_distribution(
    linear_bt: LinearBTData,
) -> None:
    head = EnsembleHead(32, seed=0)
    seen = linear_bt.test_features.reshape(-1, 32)
    _train(head, linear_bt, rounds=6)
    std_seen = head.predict(seen).std.mean()
    std_off = head.predict(linear_bt.off_distribution).std.mean()
    spread_seen = head.predict(seen).mean.std()
    assert std_off > 1.5 * std_seen
    # relative to the learned reward scale the seen-region uncertainty is small
    assert std_seen < 0.25 * spread_seen


def test_std_is_unbiased_over_heads_and_samples_are_per_head(linear_bt: LinearBTData) -> None:
    head = EnsembleHead(32, seed=2, num_heads=7)
    pred = head.predict(linear_bt.off_distribution[:9])
    assert pred.samples.shape == (9, 7)
    np.testing.assert_allclose(pred.mean, pred.samples.mean(axis=1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(pred.std, pred.samples.std(axis=1, ddof=1), rtol=1e-5, atol=1e-9)
    assert pred.pref_mean is None and pred.pref_var is None


def _distance_from_init(head: EnsembleHead) -> float:
    return float(head.anchor_penalty().detach())


def test_a_large_anchor_weight_keeps_weights_at_their_init(linear_bt: LinearBTData) -> None:
    free = EnsembleHead(32, seed=4)
    anchored = EnsembleHead(32, seed=4)
    _train(free, linear_bt, rounds=3, anchor=0.0)
    _train(anchored, linear_bt, rounds=3, anchor=1e4)
    assert _distance_from_init(free) > 0
    assert _distance_from_init(anchored) < 0.05 * _distance_from_init(free)


def test_centring_keeps_the_mean_reward_near_zero() -> None:
    # A shared offset direction gives the heads an easy way to shift all rewards; centring
    # is what holds the average at zero.
    data = make_linear_bt(seed=5, offset=3.0)
    responses = np.concatenate([data.chosen, data.rejected])
    means = {}
    for coef in (0.01, 0.0):
        head = EnsembleHead(32, seed=6, center_coefficient=coef, learning_rate=3e-3)
        _train(head, data, rounds=6, anchor=0.0)
        pred = head.predict(responses)
        means[coef] = (abs(pred.mean.mean()), pred.mean.std())
    centred_mean, centred_spread = means[0.01]
    assert centred_mean < 0.1 * centred_spread
    assert centred_mean < means[0.0][0]


def test_cosine_schedule_restarts_every_call(linear_bt: LinearBTData) -> None:
    head = EnsembleHead(32, seed=0, learning_rate=2e-3)
    for seed in (0, 1):
        m = head.train_steps(
            linear_bt.chosen,
            linear_bt.rejected,
            max_steps=10,
            batch_size=64,
            anchor_weight=0.0,
            generator_seed=seed,
        )
        assert m["last_lr"] == pytest.approx(2e-3 * 0.5 * (1 + math.cos(math.pi * 9 / 10)))
        assert m["steps"] == 10
    assert head.num_updates == 20
    # AdamW moments persist across calls
    state = head.optimizer.state[head.network.output]
    assert int(state["step"]) == 20


def test_same_seed_same_weights_different_seed_different(linear_bt: LinearBTData) -> None:
    heads = [EnsembleHead(32, seed=9) for _ in range(3)]
    for head, seed in zip(heads, (1, 1, 2), strict=True):
        head.train_steps(
            linear_bt.chosen,
            linear_bt.rejected,
            max_steps=7,
            batch_size=32,
            anchor_weight=0.5,
            generator_seed=seed,
        )
    a, b, c = (h.network.state_dict() for h in heads)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_state_round_trip_resumes_identically(linear_bt: LinearBTData) -> None:
    original = EnsembleHead(32, seed=11)
    _train(original, linear_bt, rounds=2)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    restored = EnsembleHead(32, seed=999)  # a different init: everything must come from the state
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    probe = linear_bt.off_distribution[:20]
    np.testing.assert_array_equal(original.predict(probe).samples, restored.predict(probe).samples)
    for head in (original, restored):
        _train(head, linear_bt, rounds=1, anchor=0.3)
    np.testing.assert_array_equal(original.predict(probe).samples, restored.predict(probe).samples)
    assert original.num_updates == restored.num_updates == 60
