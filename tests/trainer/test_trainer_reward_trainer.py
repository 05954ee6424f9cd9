"""RewardModelTrainer: replay subsample size, step count, anchor weight, determinism, resume."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from prefloop.reward.base import RewardPrediction
from prefloop.reward.ensemble import EnsembleHead
from prefloop.trainer import AnchorSchedule, ReplayBuffer, RewardModelTrainer
from prefloop.trainer.reward_trainer import RewardTrainerError

DIM = 8


class RecordingHead:
    """A head that records what the trainer asked it to do."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def predict(self, features: np.ndarray) -> RewardPrediction:
        zeros = np.zeros(len(features))
        return RewardPrediction(zeros, zeros, np.zeros((len(features), 2)))

    def pairwise_logit(self, features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
        return np.zeros(len(features_a))

    def train_steps(
        self,
        chosen: np.ndarray,
        rejected: np.ndarray,
        *,
        max_steps: int,
        batch_size: int,
        anchor_weight: float,
        generator_seed: int,
    ) -> dict[str, float]:
        self.calls.append(
            {
                "chosen": chosen.copy(),
                "rejected": rejected.copy(),
                "max_steps": max_steps,
                "batch_size": batch_size,
                "anchor_weight": anchor_weight,
                "generator_seed": generator_seed,
            }
        )
        return {"loss": 0.5}

    def state_dict(self) -> dict[str, Any]:
        return {"calls": len(self.calls)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls = [{}] * int(state["calls"])


def _round(start: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed + start)
    w = np.linspace(-1, 1, DIM)
    a = rng.normal(size=(n, DIM)).astype(np.float32)
    b = rng.normal(size=(n, DIM)).astype(np.float32)
    a_wins = (a @ w) > (b @ w)
    chosen = np.where(a_wins[:, None], a, b)
    rejected = np.where(a_wins[:, None], b, a)
    return chosen, rejected, [f"p{i}" for i in range(start, start + n)]


def test_sample_size_steps_and_anchor_follow_the_recipe() -> None:
    head = RecordingHead()
    schedule = AnchorSchedule(base=0.999)
    trainer = RewardModelTrainer(
        head, ReplayBuffer(10_000), schedule, max_steps_per_round=5, batch_size=16
    )
    m = trainer.train_round(*_round(0, 20), n_done=64, n_total=640, seed=1)
    call = head.calls[-1]
    assert len(call["chosen"]) == 20 and call["max_steps"] == 2  # ceil(20 / 16)
    assert call["batch_size"] == 16
    assert call["anchor_weight"] == pytest.approx(schedule.value(64, 640))
    assert m["anchor_weight"] == pytest.approx(schedule.value(64, 640))
    assert m["steps"] == 2 and m["new_pairs"] == 20 and m["loss"] == 0.5
    m = trainer.train_round(*_round(20, 200), n_done=128, n_total=640, seed=2)
    call = head.calls[-1]
    assert len(call["chosen"]) == 80 and call["max_steps"] == 5  # capped at 16 x 5 pairs
    assert m["buffer_size"] == 220 and m["num_pairs"] == 80
    # the sample is drawn from the whole buffer, old and new pairs alike
    pool = {row.tobytes() for row in trainer.buffer.arrays()[0]}
    assert all(row.tobytes() in pool for row in call["chosen"])


def test_passes_per_round_multiplies_steps_up_to_the_cap() -> None:
    head = RecordingHead()
    trainer = RewardModelTrainer(
        head, ReplayBuffer(1000), AnchorSchedule(), max_steps_per_round=10, batch_size=8,
        passes_per_round=3,
    )  # fmt: skip
    trainer.train_round(*_round(0, 12), n_done=1, n_total=10, seed=0)
    assert head.calls[-1]["max_steps"] == 5  # ceil(3 * 12 / 8)
    trainer.train_round(*_round(12, 100), n_done=2, n_total=10, seed=0)
    assert head.calls[-1]["max_steps"] == 10


def test_replayed_pairs_are_not_added_twice_and_an_empty_round_trains_nothing() -> None:
    head = RecordingHead()
    trainer = RewardModelTrainer(head, ReplayBuffer(100), AnchorSchedule())
    empty = np.zeros((0, DIM), np.float32)
    m = trainer.train_round(empty, empty, [], n_done=0, n_total=10, seed=0)
    assert m["steps"] == 0 and head.calls == []
    pairs = _round(0, 10)
    trainer.train_round(*pairs, n_done=1, n_total=10, seed=0)
    m = trainer.train_round(*pairs, n_done=2, n_total=10, seed=1)
    assert m["new_pairs"] == 0 and m["buffer_size"] == 10


def _ensemble_trainer(seed: int = 0) -> RewardModelTrainer:
    head = EnsembleHead(DIM, seed=seed, num_heads=4, hidden_dim=16, learning_rate=1e-2)
    return RewardModelTrainer(
        head, ReplayBuffer(500), AnchorSchedule(), max_steps_per_round=10, batch_size=16
    )


def _weights(trainer: RewardModelTrainer) -> dict[str, torch.Tensor]:
    head = trainer.head
    assert isinstance(head, EnsembleHead)
    return head.network.state_dict()


def test_same_seed_gives_bitwise_identical_weights() -> None:
    runs = []
    for round_seed in (5, 5, 6):
        trainer = _ensemble_trainer()
        trainer.train_round(*_round(0, 40), n_done=40, n_total=200, seed=round_seed)
        trainer.train_round(*_round(40, 40), n_done=80, n_total=200, seed=round_seed + 1)
        runs.append(_weights(trainer))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_state_round_trip_resumes_to_identical_training() -> None:
    original = _ensemble_trainer()
    original.train_round(*_round(0, 60), n_done=60, n_total=300, seed=1)
    original.train_round(*_round(60, 60), n_done=120, n_total=300, seed=2)
    state = copy.deepcopy(original.state_dict())
    resumed = _ensemble_trainer(seed=123)  # a different init: the state must carry everything
    resumed.load_state_dict(state)
    assert resumed.rounds_trained == 2 and len(resumed.buffer) == 120
    probe = _round(500, 5)[0]
    np.testing.assert_array_equal(
        original.head.predict(probe).samples, resumed.head.predict(probe).samples
    )
    for trainer in (original, resumed):
        trainer.train_round(*_round(120, 60), n_done=180, n_total=300, seed=3)
    a, b = _weights(original), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_rounds_improve_a_real_head() -> None:
    trainer = _ensemble_trainer()
    test_c, test_r, _ = _round(900, 200)
    head = trainer.head
    before = float((head.pairwise_logit(test_c, test_r) > 0).mean())
    for r in range(6):
        trainer.train_round(*_round(r * 50, 50), n_done=(r + 1) * 50, n_total=300, seed=r)
    after = float((head.pairwise_logit(test_c, test_r) > 0).mean())
    assert after > 0.85 and after > before


def test_bad_configuration_is_named() -> None:
    with pytest.raises(RewardTrainerError, match="max_steps_per_round"):
        RewardModelTrainer(RecordingHead(), ReplayBuffer(1), AnchorSchedule(), 0)
    with pytest.raises(RewardTrainerError, match="batch_size"):
        RewardModelTrainer(RecordingHead(), ReplayBuffer(1), AnchorSchedule(), batch_size=0)
    with pytest.raises(RewardTrainerError, match="lacks 'buffer'"):
        RewardModelTrainer(RecordingHead(), ReplayBuffer(1), AnchorSchedule()).load_state_dict(
            {"head": {}}
        )
