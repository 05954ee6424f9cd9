"""The reward-uncertainty contract: embedders turn text into features, heads turn features into
rewards with uncertainty, and learn from labelled pairs.

The heads work on frozen features (the ActiveUltraFeedback recipe): the expensive language model
runs once per response and its features are cached; the heads are small and train on CPU in
seconds. Every head returns the same ``RewardPrediction`` so that every acquisition rule can run
on every head (rules that need a BGPM preference embedding say so when it is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class RewardPrediction:
    """Predictions for M responses.

    Attributes:
        mean: (M,) reward estimate mu.
        std: (M,) epistemic standard deviation sigma.
        samples: (M, S) per-member rewards / posterior draws (S >= 2).
        pref_mean: (M, 2k) BGPM preference-embedding mean (None for scalar-reward heads).
        pref_var: (M, 2k) BGPM preference-embedding variance (None for scalar-reward heads).
    """

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray
    pref_mean: np.ndarray | None = None
    pref_var: np.ndarray | None = None


class Embedder(Protocol):
    """Text to frozen features. ``name`` keys the feature cache; ``dim`` is the feature width."""

    name: str
    dim: int

    def embed(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """(M, dim) float32 features of M (prompt, response) pairs."""
        ...


class RewardHead(Protocol):
    """An uncertainty-aware reward head over frozen features."""

    def predict(self, features: np.ndarray) -> RewardPrediction:
        """Reward mean, std and samples for (M, D) features."""
        ...

    def pairwise_logit(self, features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
        """(M,) logit of P(a beats b); for scalar heads mean(a) - mean(b)."""
        ...

    def pairwise_logit_samples(self, features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
        """(M, S) posterior draws of that logit; their spread is the pairwise uncertainty."""
        ...

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
        """Train on (B, D) chosen / rejected features; returns loss metrics."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, anchors, optimizer state."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
