"""One training round of the in-loop reward model: replay, subsample, anchored training.

Per round, as in ActiveUltraFeedback (spec ``activeuf.md`` section 2,
https://arxiv.org/abs/2603.09692):

1. the round's judged pairs join the FIFO replay buffer (deduplicated by pair id);
2. n = min(len(buffer), batch_size * max_steps) pairs are drawn without replacement with
   ``np.random.default_rng(seed)``;
3. the head trains for min(max_steps, ceil(passes_per_round * n / batch_size)) steps with the
   anchor weight lambda_t of the schedule at (n_done, n_total); the head's optimiser state
   carries over between rounds, its learning-rate schedule restarts.

``passes_per_round`` (default 1, the reference's single epoch) lets small runs take more steps
per round without changing the replay recipe. Everything random flows from ``seed``: the same
seed and inputs give bitwise-identical weights. ``state_dict`` covers the head, the buffer and
the round counter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prefloop.reward.base import RewardHead
from prefloop.trainer.anchor_schedule import AnchorSchedule
from prefloop.trainer.replay_buffer import ReplayBuffer


class RewardTrainerError(ValueError):
    """A trainer was configured or called with impossible values."""


class RewardModelTrainer:
    """Trains a ``RewardHead`` round by round on a replay buffer with an anchor schedule."""

    def __init__(
        self,
        head: RewardHead,
        buffer: ReplayBuffer,
        schedule: AnchorSchedule,
        max_steps_per_round: int = 100,
        batch_size: int = 64,
        passes_per_round: int = 1,
    ) -> None:
        if max_steps_per_round < 1:
            raise RewardTrainerError(f"max_steps_per_round must be >= 1, got {max_steps_per_round}")
        if batch_size < 1:
            raise RewardTrainerError(f"batch_size must be >= 1, got {batch_size}")
        if passes_per_round < 1:
            raise RewardTrainerError(f"passes_per_round must be >= 1, got {passes_per_round}")
        self.head = head
        self.buffer = buffer
        self.schedule = schedule
        self.max_steps_per_round = int(max_steps_per_round)
        self.batch_size = int(batch_size)
        self.passes_per_round = int(passes_per_round)
        self.rounds_trained = 0

    def steps_for(self, num_pairs: int) -> int:
        """Optimiser steps a round with ``num_pairs`` sampled pairs takes."""
        wanted = math.ceil(self.passes_per_round * num_pairs / self.batch_size)
        return min(self.max_steps_per_round, wanted)

    def train_round(
        self,
        chosen: np.ndarray,
        rejected: np.ndarray,
        pair_ids: list[str],
        *,
        n_done: int,
        n_total: int,
        seed: int,
    ) -> dict[str, float]:
        """Add the round's pairs, subsample the buffer, train the head; return metrics.

        Why: this is the trainer role of the loop (step 7 of ActiveUltraFeedback); keeping the
        buffer, the subsample and the anchor schedule here makes every mode (embedded,
        services, cluster) train identically from the same seed.
        """
        added = self.buffer.add(chosen, rejected, pair_ids)
        anchor_weight = self.schedule.value(n_done, n_total)
        metrics: dict[str, float] = {
            "new_pairs": float(added),
            "buffer_size": float(len(self.buffer)),
            "anchor_weight": float(anchor_weight),
        }
        n = min(len(self.buffer), self.batch_size * self.max_steps_per_round)
        if n == 0:
            metrics.update({"steps": 0.0, "num_pairs": 0.0})
            return metrics
        rng = np.random.default_rng(seed)
        sample_c, sample_r, _ = self.buffer.sample(n, rng)
        head_seed = int(rng.integers(0, 2**62))
        steps = self.steps_for(n)
        head_metrics = self.head.train_steps(
            sample_c,
            sample_r,
            max_steps=steps,
            batch_size=self.batch_size,
            anchor_weight=anchor_weight,
            generator_seed=head_seed,
        )
        self.rounds_trained += 1
        metrics.update({k: float(v) for k, v in head_metrics.items()})
        metrics.update({"steps": float(steps), "num_pairs": float(n)})
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Head state (weights, anchors, optimiser), buffer contents and the round count."""
        return {
            "head": self.head.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rounds_trained": self.rounds_trained,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` into this trainer's head and buffer."""
        for key in ("head", "buffer", "rounds_trained"):
            if key not in state:
                raise RewardTrainerError(f"trainer state lacks {key!r}")
        self.head.load_state_dict(state["head"])
        self.buffer.load_state_dict(state["buffer"])
        self.rounds_trained = int(state["rounds_trained"])
