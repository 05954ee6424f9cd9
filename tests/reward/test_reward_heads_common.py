"""What every head shares: the RewardHead contract, the factory, checkpoints and input errors."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from _reward_synthetic import LinearBTData

from prefloop.reward import HeadInputError, head_from_state, make_head
from prefloop.reward.base import RewardHead

KINDS = ["ensemble", "epinet", "bgpm"]


@pytest.mark.parametrize("kind", KINDS)
def test_prediction_contract(kind: str, linear_bt: LinearBTData) -> None:
    head: RewardHead = make_head(kind, 32, seed=0)  # type: ignore[arg-type]
    x = linear_bt.off_distribution[:7]
    pred = head.predict(x)
    assert pred.mean.shape == (7,) and pred.std.shape == (7,)
    assert pred.samples.ndim == 2 and pred.samples.shape[0] == 7 and pred.samples.shape[1] >= 2
    for arr in (pred.mean, pred.std, pred.samples):
        assert np.all(np.isfinite(arr))
    assert np.all(pred.std >= 0)
    assert head.pairwise_logit(x, x[::-1].copy()).shape == (7,)
    empty = head.predict(np.zeros((0, 32), dtype=np.float32))
    assert empty.mean.shape == (0,) and empty.samples.shape[0] == 0


@pytest.mark.parametrize("kind", ["ensemble", "epinet"])
def test_scalar_heads_pairwise_logit_is_the_mean_difference(
    kind: str, linear_bt: LinearBTData
) -> None:
    head = make_head(kind, 32, seed=0)  # type: ignore[arg-type]
    a, b = linear_bt.chosen[:9], linear_bt.rejected[:9]
    np.testing.assert_allclose(
        head.pairwise_logit(a, b), head.predict(a).mean - head.predict(b).mean, atol=1e-9
    )


@pytest.mark.parametrize("kind", KINDS)
def test_head_from_state_rebuilds_through_a_weights_only_checkpoint(
    kind: str, linear_bt: LinearBTData
) -> None:
    head = make_head(kind, 32, seed=3)  # type: ignore[arg-type]
    head.train_steps(
        linear_bt.chosen,
        linear_bt.rejected,
        max_steps=3,
        batch_size=64,
        anchor_weight=0.5,
        generator_seed=0,
    )
    buffer = io.BytesIO()
    torch.save(head.state_dict(), buffer)
    buffer.seek(0)
    rebuilt = head_from_state(torch.load(buffer, weights_only=True))
    assert type(rebuilt) is type(head)
    probe = linear_bt.off_distribution[:5]
    np.testing.assert_array_equal(head.predict(probe).samples, rebuilt.predict(probe).samples)


@pytest.mark.parametrize("kind", KINDS)
def test_saved_state_is_a_snapshot_not_a_live_view(kind: str, linear_bt: LinearBTData) -> None:
    head = make_head(kind, 32, seed=1)  # type: ignore[arg-type]
    state = head.state_dict()
    probe = linear_bt.off_distribution[:5]
    before = head.predict(probe).samples
    head.train_steps(
        linear_bt.chosen,
        linear_bt.rejected,
        max_steps=3,
        batch_size=64,
        anchor_weight=0.0,
        generator_seed=0,
    )
    assert not np.array_equal(head.predict(probe).samples, before)
    head.load_state_dict(state)
    np.testing.assert_array_equal(head.predict(probe).samples, before)


def test_loading_a_state_of_another_kind_or_config_fails() -> None:
    ensemble = make_head("ensemble", 32, seed=0)
    with pytest.raises(HeadInputError, match="kind 'epinet'"):
        ensemble.load_state_dict(make_head("epinet", 32, seed=0).state_dict())
    with pytest.raises(HeadInputError, match="num_heads"):
        ensemble.load_state_dict(make_head("ensemble", 32, seed=0, num_heads=3).state_dict())


def test_factory_rejects_unknown_kinds_and_parameters() -> None:
    with pytest.raises(HeadInputError, match="unknown reward head kind 'gp'"):
        make_head("gp", 8, seed=0)  # type: ignore[arg-type]
    with pytest.raises(HeadInputError, match=r"\['heads'\]"):
        make_head("ensemble", 8, seed=0, heads=3)
    head = make_head("epinet", 8, seed=0, epinet_hidden_dims=[8])
    assert head.config()["epinet_hidden_dims"] == [8]


BAD_TRAINING: list[tuple[dict[str, Any], str]] = [
    ({"chosen": np.zeros((4, 31), np.float32)}, "feature width 31"),
    ({"chosen": np.zeros(32, np.float32)}, "2-d"),
    ({"rejected": np.zeros((3, 32), np.float32)}, "pairs must align"),
    ({"chosen": np.full((4, 32), np.nan, np.float32)}, "row 0 contains NaN"),
    ({"anchor_weight": -1.0}, "anchor_weight"),
    ({"batch_size": 0}, "batch_size"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("override", "message"), BAD_TRAINING)
def test_bad_training_input_is_named(kind: str, override: dict[str, Any], message: str) -> None:
    head = make_head(kind, 32, seed=0)  # type: ignore[arg-type]
    args: dict[str, Any] = {
        "chosen": np.zeros((4, 32), np.float32),
        "rejected": np.ones((4, 32), np.float32),
        "max_steps": 1,
        "batch_size": 2,
        "anchor_weight": 0.0,
        "generator_seed": 0,
    }
    args.update(override)
    chosen, rejected = args.pop("chosen"), args.pop("rejected")
    with pytest.raises(HeadInputError, match=message):
        head.train_steps(chosen, rejected, **args)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_prediction_input_is_named(kind: str) -> None:
    head = make_head(kind, 32, seed=0)  # type: ignore[arg-type]
    with pytest.raises(HeadInputError, match="input_dim 32"):
        head.predict(np.zeros((2, 16), np.float32))
    x = np.zeros((3, 32), np.float32)
    x[2, 5] = np.inf
    with pytest.raises(HeadInputError, match="row 2"):
        head.predict(x)
