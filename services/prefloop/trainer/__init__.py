"""trainer: in-loop reward-model training (replay buffer, anchor schedule, round trainer)."""

from prefloop.trainer.anchor_schedule import AnchorSchedule
from prefloop.trainer.replay_buffer import ReplayBuffer
from prefloop.trainer.reward_trainer import RewardModelTrainer

__all__ = ["AnchorSchedule", "ReplayBuffer", "RewardModelTrainer"]
