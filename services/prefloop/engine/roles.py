"""The five roles of a round, as protocols the round engine drives.

Embedded mode implements them with local objects (``local_roles.py``); service mode implements
them with gRPC clients; the engine cannot tell the difference. Keeping the roles this narrow is
what lets one round run in one process, in five processes or on a cluster with the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.data.records import PreferencePair, PromptItem
from prefloop.judge.base import Judgement, JudgeRequest


@dataclass(frozen=True)
class RewardScores:
    """The reward model's estimates for a batch (arrays over prompt x response, padded)."""

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray
    features: np.ndarray | None
    pref_mean: np.ndarray | None
    pref_var: np.ndarray | None
    model_version: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """What a training round produced: the new reward-model version and its loss metrics."""

    model_version: int
    metrics: dict[str, float] = field(default_factory=dict)


class GenerationRole(Protocol):
    """Fills every prompt's responses (or returns the stored ones)."""

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]: ...


class RewardRole(Protocol):
    """Scores every response of a batch; evaluates on held-out prompts."""

    def score(self, items: list[PromptItem], mask: np.ndarray) -> RewardScores: ...

    def evaluate(self, items: list[PromptItem]) -> dict[str, float]: ...


class AcquisitionRole(Protocol):
    """Runs a registered rule on the reward model's estimates."""

    def select(
        self, inputs: AcquisitionInput, *, method: str, params: dict[str, Any], seed: int
    ) -> Selection: ...


class JudgeRole(Protocol):
    """Labels pairs."""

    name: str

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]: ...


class TrainerRole(Protocol):
    """Trains the reward model on new labels and publishes a new version."""

    def train(
        self,
        pairs: list[PreferencePair],
        *,
        round_index: int,
        n_done: int,
        n_total: int,
        seed: int,
    ) -> TrainResult:
        """Train round ``round_index`` on its labelled pairs (idempotent per round)."""
        ...

    def save_state(self, directory: Path) -> None: ...

    def load_state(self, directory: Path) -> None: ...
