"""ReplayBuffer: FIFO order, capacity, dedup by pair id, sampling, numpy-only state."""

from __future__ import annotations

import io

import numpy as np
import pytest

from prefloop.trainer.replay_buffer import ReplayBuffer, ReplayBufferError


def _pairs(start: int, n: int, dim: int = 3) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pairs whose chosen features encode their number, so order is visible."""
    ids = np.arange(start, start + n, dtype=np.float32)
    chosen = np.repeat(ids[:, None], dim, axis=1)
    return chosen, -chosen, [f"pair-{i}" for i in range(start, start + n)]


def test_fifo_evicts_the_oldest_past_capacity() -> None:
    buf = ReplayBuffer(capacity=5)
    assert buf.add(*_pairs(0, 3)) == 3
    assert buf.add(*_pairs(3, 4)) == 4
    chosen, rejected, ids = buf.arrays()
    assert len(buf) == 5
    assert ids == [f"pair-{i}" for i in range(2, 7)]
    np.testing.assert_array_equal(chosen[:, 0], np.arange(2, 7))
    np.testing.assert_array_equal(rejected, -chosen)
    assert "pair-0" not in buf and "pair-6" in buf


def test_adding_the_same_pair_twice_changes_nothing() -> None:
    buf = ReplayBuffer(capacity=10)
    buf.add(*_pairs(0, 4))
    before = buf.arrays()
    c, r, ids = _pairs(2, 2)
    assert buf.add(c + 100, r, ids) == 0  # same ids, even with different features
    after = buf.arrays()
    np.testing.assert_array_equal(before[0], after[0])
    assert before[2] == after[2]
    c, r, ids = _pairs(7, 1)
    assert buf.add(np.concatenate([c, c]), np.concatenate([r, r]), ids * 2) == 1  # within a call


def test_an_evicted_pair_can_come_back() -> None:
    buf = ReplayBuffer(capacity=2)
    buf.add(*_pairs(0, 3))
    assert buf.add(*_pairs(0, 1)) == 1
    assert buf.arrays()[2] == ["pair-2", "pair-0"]


def test_growth_keeps_order_across_many_small_adds() -> None:
    buf = ReplayBuffer(capacity=150)
    for start in range(0, 200, 7):
        buf.add(*_pairs(start, 7))
    _, _, ids = buf.arrays()
    assert ids == [f"pair-{i}" for i in range(203 - 150, 203)]


def test_sample_is_without_replacement_and_seeded() -> None:
    buf = ReplayBuffer(capacity=100)
    buf.add(*_pairs(0, 50))
    c1, r1, ids1 = buf.sample(20, np.random.default_rng(3))
    c2, _, ids2 = buf.sample(20, np.random.default_rng(3))
    assert ids1 == ids2 and len(set(ids1)) == 20
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(c1[:, 0], [int(i.split("-")[1]) for i in ids1])
    np.testing.assert_array_equal(r1, -c1)
    assert sorted(buf.sample(50, np.random.default_rng(0))[2]) == sorted(buf.arrays()[2])
    assert buf.sample(0, np.random.default_rng(0))[0].shape == (0, 3)
    with pytest.raises(ReplayBufferError, match="cannot sample 51"):
        buf.sample(51, np.random.default_rng(0))


def test_state_round_trip_is_numpy_only() -> None:
    buf = ReplayBuffer(capacity=4)
    buf.add(*_pairs(0, 6))
    state = buf.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    stream = io.BytesIO()
    np.savez(stream, **state)
    stream.seek(0)
    loaded = dict(np.load(stream, allow_pickle=False))
    restored = ReplayBuffer(capacity=4)
    restored.load_state_dict(loaded)
    for a, b in zip(buf.arrays(), restored.arrays(), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # FIFO continues identically after the restore
    buf.add(*_pairs(10, 1))
    restored.add(*_pairs(10, 1))
    assert buf.arrays()[2] == restored.arrays()[2] == ["pair-3", "pair-4", "pair-5", "pair-10"]
    with pytest.raises(ReplayBufferError, match="capacity 4"):
        ReplayBuffer(capacity=5).load_state_dict(state)
    empty = ReplayBuffer(capacity=3)
    empty.load_state_dict(ReplayBuffer(capacity=3).state_dict())
    assert len(empty) == 0 and empty.dim is None


def test_bad_input_is_named() -> None:
    with pytest.raises(ReplayBufferError, match="capacity must be >= 1"):
        ReplayBuffer(0)
    buf = ReplayBuffer(4)
    with pytest.raises(ReplayBufferError, match="2 pair_ids for 3"):
        buf.add(*_pairs(0, 3)[:2], ["a", "b"])
    buf.add(*_pairs(0, 1))
    with pytest.raises(ReplayBufferError, match="5-d, the buffer holds 3-d"):
        buf.add(*_pairs(1, 1, dim=5))
    c, r, ids = _pairs(2, 1)
    c[0, 0] = np.nan
    with pytest.raises(ReplayBufferError, match="NaN"):
        buf.add(c, r, ids)
