"""Synthetic Bradley-Terry data with a known linear reward, for the reward-head tests.

Features are unit vectors supported on the first ``support`` coordinates (the "seen" region);
the true reward is ``scale * w . x`` with w in the same subspace. Off-distribution points live
on the remaining coordinates, which no training pair ever touches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearBTData:
    w: np.ndarray
    chosen: np.ndarray  # (B, D)
    rejected: np.ndarray  # (B, D)
    test_features: np.ndarray  # (P, N, D)
    test_scores: np.ndarray  # (P, N)
    test_mask: np.ndarray  # (P, N)
    off_distribution: np.ndarray  # (M, D)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_linear_bt(
    seed: int = 0,
    dim: int = 32,
    support: int = 16,
    num_pairs: int = 600,
    scale: float = 4.0,
    test_prompts: int = 40,
    test_responses: int = 6,
    offset: float = 0.0,
) -> LinearBTData:
    """Pairs labelled by sampling from Bradley-Terry with the true reward ``scale * w . x``.

    ``offset`` adds a shared component along coordinate 0 before normalising, mimicking
    sentence embeddings, which all share a common direction.
    """
    rng = np.random.default_rng(seed)
    w = np.zeros(dim)
    w[1:support] = rng.normal(size=support - 1)
    w /= np.linalg.norm(w)

    def seen(*shape: int) -> np.ndarray:
        x = np.zeros((*shape, dim))
        x[..., :support] = rng.normal(size=(*shape, support))
        x[..., 0] += offset
        return _unit(x)

    a, b = seen(num_pairs), seen(num_pairs)
    p_a = 1.0 / (1.0 + np.exp(-scale * (a - b) @ w))
    a_wins = rng.random(num_pairs) < p_a
    chosen = np.where(a_wins[:, None], a, b)
    rejected = np.where(a_wins[:, None], b, a)
    test = seen(test_prompts, test_responses)
    off = np.zeros((200, dim))
    off[:, support:] = rng.normal(size=(200, dim - support))
    return LinearBTData(
        w=w,
        chosen=chosen,
        rejected=rejected,
        test_features=test,
        test_scores=scale * test @ w,
        test_mask=np.ones((test_prompts, test_responses), dtype=bool),
        off_distribution=_unit(off),
    )
