"""A FIFO replay buffer of labelled feature pairs, deduplicated by pair id.

The in-loop reward model does not train on the newest round alone: ActiveUltraFeedback keeps a
``deque(maxlen=outer_batch * replay_factor)`` of (chosen, rejected) feature pairs and trains every
round on a random subsample of it (spec ``activeuf.md`` section 2,
https://arxiv.org/abs/2603.09692). This buffer does the same, with two additions the service
setting needs:

* pairs carry their deterministic ``pair_id``; adding a pair that is already present changes
  nothing, so an at-least-once message bus cannot double-weight a label;
* the state is plain numpy arrays (oldest first), so checkpoints need no pickle of torch.

Storage is a ring of preallocated rows that grows by doubling up to ``capacity``; eviction
drops the oldest pair (and forgets its id, so it could be re-added later).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ReplayBufferError(ValueError):
    """Pairs of inconsistent shape, a bad capacity or an impossible sample request."""


class ReplayBuffer:
    """FIFO of (chosen_features, rejected_features, pair_id) with at most ``capacity`` pairs."""

    def __init__(self, capacity: int) -> None:
        if int(capacity) < 1:
            raise ReplayBufferError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._reset(None)

    def _reset(self, dim: int | None) -> None:
        """Empty the buffer; ``dim`` fixes the feature width (None: set by the first add)."""
        width = 0 if dim is None else dim
        self._chosen = np.zeros((0, width), dtype=np.float32)
        self._rejected = np.zeros((0, width), dtype=np.float32)
        self._ids: list[str] = []
        self._start = 0
        self._size = 0
        self._slot_of: dict[str, int] = {}
        self.dim: int | None = dim

    def __len__(self) -> int:
        return self._size

    def __contains__(self, pair_id: object) -> bool:
        return pair_id in self._slot_of

    def _grow(self, needed: int) -> None:
        """Ensure room for ``needed`` slots, preserving logical order (oldest first)."""
        allocated = self._chosen.shape[0]
        if needed <= allocated:
            return
        new_size = min(self.capacity, max(needed, 2 * allocated, 64))
        order = self._logical_slots()
        assert self.dim is not None
        chosen = np.zeros((new_size, self.dim), dtype=np.float32)
        rejected = np.zeros((new_size, self.dim), dtype=np.float32)
        chosen[: self._size] = self._chosen[order]
        rejected[: self._size] = self._rejected[order]
        ids = [self._ids[s] for s in order] + [""] * (new_size - self._size)
        self._chosen, self._rejected, self._ids = chosen, rejected, ids
        self._start = 0
        self._slot_of = {pid: i for i, pid in enumerate(ids[: self._size])}

    def _logical_slots(self) -> np.ndarray:
        allocated = max(self._chosen.shape[0], 1)
        return (self._start + np.arange(self._size)) % allocated

    def add(self, chosen: np.ndarray, rejected: np.ndarray, pair_ids: list[str]) -> int:
        """Append new pairs (oldest evicted past capacity); returns how many were new.

        Why: the trainer adds every round's judged pairs; duplicates by ``pair_id`` (also
        within one call) are skipped so a replayed message never counts twice.
        """
        c = np.asarray(chosen, dtype=np.float32)
        r = np.asarray(rejected, dtype=np.float32)
        if c.ndim != 2 or c.shape != r.shape:
            raise ReplayBufferError(
                f"chosen {c.shape} and rejected {r.shape} must be equal-shaped 2-d arrays"
            )
        if len(pair_ids) != c.shape[0]:
            raise ReplayBufferError(f"{len(pair_ids)} pair_ids for {c.shape[0]} feature rows")
        if c.shape[0] == 0:
            return 0
        if self.dim is None:
            self._reset(int(c.shape[1]))
        elif c.shape[1] != self.dim:
            raise ReplayBufferError(f"features are {c.shape[1]}-d, the buffer holds {self.dim}-d")
        if not (np.isfinite(c).all() and np.isfinite(r).all()):
            raise ReplayBufferError("chosen/rejected features contain NaN or infinite values")
        added = 0
        for row, pid in enumerate(pair_ids):
            pid = str(pid)
            if pid in self._slot_of:
                continue
            self._push(c[row], r[row], pid)
            added += 1
        return added

    def _push(self, chosen: np.ndarray, rejected: np.ndarray, pair_id: str) -> None:
        if self._size < self.capacity:
            self._grow(self._size + 1)
            slot = (self._start + self._size) % self._chosen.shape[0]
            self._size += 1
        else:  # full: overwrite the oldest
            slot = self._start
            del self._slot_of[self._ids[slot]]
            self._start = (self._start + 1) % self.capacity
        self._chosen[slot] = chosen
        self._rejected[slot] = rejected
        self._ids[slot] = pair_id
        self._slot_of[pair_id] = slot

    def arrays(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """All pairs, oldest first, as (chosen, rejected, pair_ids) copies."""
        order = self._logical_slots()
        dim = self.dim or 0
        if self._size == 0:
            empty = np.zeros((0, dim), dtype=np.float32)
            return empty, empty.copy(), []
        return self._chosen[order], self._rejected[order], [self._ids[s] for s in order]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``n`` distinct pairs drawn uniformly without replacement with ``rng``.

        Why: the reference trains each round on ``random.sample(buffer, k)``; drawing from
        the caller's generator makes the subsample a function of the round's seed.
        """
        if not 0 <= int(n) <= self._size:
            raise ReplayBufferError(f"cannot sample {n} pairs from a buffer of {self._size}")
        if n == 0:
            dim = self.dim or 0
            return np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32), []
        picks = rng.choice(self._size, size=int(n), replace=False)
        slots = self._logical_slots()[picks]
        return self._chosen[slots], self._rejected[slots], [self._ids[s] for s in slots]

    def state_dict(self) -> dict[str, Any]:
        """Capacity and the pairs oldest first, as numpy arrays (no pickled objects)."""
        chosen, rejected, ids = self.arrays()
        return {
            "capacity": np.asarray(self.capacity, dtype=np.int64),
            "dim": np.asarray(-1 if self.dim is None else self.dim, dtype=np.int64),
            "chosen": chosen,
            "rejected": rejected,
            "pair_ids": np.asarray(ids, dtype=np.str_),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the contents with a saved state (the capacity must match)."""
        capacity = int(state["capacity"])
        if capacity != self.capacity:
            raise ReplayBufferError(
                f"state has capacity {capacity}, this buffer has {self.capacity}"
            )
        ids = [str(x) for x in np.asarray(state["pair_ids"]).tolist()]
        chosen = np.asarray(state["chosen"], dtype=np.float32)
        rejected = np.asarray(state["rejected"], dtype=np.float32)
        if len(ids) > capacity:
            raise ReplayBufferError(f"state holds {len(ids)} pairs, more than capacity {capacity}")
        if len(set(ids)) != len(ids):
            raise ReplayBufferError("state has duplicate pair ids")
        dim = int(state["dim"])
        self._reset(dim if dim >= 0 else None)
        if ids:
            self.add(chosen, rejected, ids)
