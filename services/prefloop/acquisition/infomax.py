"""InfoMax: the comparison whose Bradley-Terry outcome is most uncertain.

Under a Bradley-Terry model ``P(i > j) = sigmoid(r_i - r_j)``. With confidence bounds
``UB = mu + beta sigma`` and ``LB = mu - beta sigma`` the probability lies in
``[sigmoid(LB_i - UB_j), sigmoid(UB_i - LB_j)]``; InfoMax picks the pair with the widest interval

    W[i, j] = sigmoid(UB_i - LB_j) - sigmoid(LB_i - UB_j),

largest when the means are close and the stds large. ActiveUltraFeedback benchmarks it as a
dueling-bandit baseline (good reward models, little DPO gain). ``W`` is symmetric, so the
argmax returns ``first < second`` (the first flat index wins ties). It is computed here as
``sigmoid(x) + sigmoid(y) - 1`` with ``x = UB_i - LB_j`` and ``y = UB_j - LB_i`` (the same value,
since ``sigmoid(-y) = 1 - sigmoid(y)``), which makes the symmetry exact in floating point.
The reference code has no beta for InfoMax (its bounds use beta = 1); ``beta = 1`` matches it.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from prefloop.acquisition._checks import checked_confidence_inputs
from prefloop.acquisition._pairs import PickedPairs, pair_validity, top_k_pairs
from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.acquisition.delta_ucb import optimistic_gap
from prefloop.acquisition.registry import register

AUF_PAPER = "https://arxiv.org/abs/2603.09692"


def preference_interval_width(mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
    """(P, N, N) width ``W[p, i, j]`` of the Bradley-Terry confidence interval on P(i > j).

    Why: the uncertainty of a comparison's outcome, which InfoMax maximises and InfoGain uses
    for its second pick (https://arxiv.org/abs/2603.09692).
    """
    sig = np.asarray(expit(optimistic_gap(mean, std, beta)))
    return np.asarray(sig + sig.transpose(0, 2, 1) - 1.0)


def widest_interval_pair(
    mean: np.ndarray, std: np.ndarray, beta: float, mask: np.ndarray
) -> tuple[PickedPairs, np.ndarray]:
    """InfoMax's single pair per prompt and its width, from the pairs ``i < j`` only.

    Why: ``W`` is exactly symmetric, so its first flat argmax always lies above the diagonal;
    evaluating the ``N (N - 1) / 2`` upper pairs in row-major order gives the same pair and
    value as the full matrix with half the sigmoids (https://arxiv.org/abs/2603.09692).
    """
    n = mask.shape[1]
    first, second = np.triu_indices(n, 1)
    upper = mean + beta * std
    lower = mean - beta * std
    width = expit(upper[:, first] - lower[:, second]) + expit(upper[:, second] - lower[:, first])
    width -= 1.0
    legal = mask[:, first] & mask[:, second]
    best = np.argmax(np.where(legal, width, -np.inf), axis=1)
    rows = np.flatnonzero(legal.any(axis=1))
    picked = PickedPairs(rows.astype(np.int64), first[best[rows]], second[best[rows]])
    return picked, np.asarray(width[rows, best[rows]], dtype=np.float64)


@register(
    "infomax",
    paper=AUF_PAPER,
    summary="InfoMax: the pair with the widest confidence interval on P(i beats j)",
)
def infomax(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    beta: float = 1.0,
    pairs_per_prompt: int = 1,
) -> Selection:
    """Pick the pair(s) whose preference probability the model is least sure about.

    Why: pure information-seeking exploration for the reward model, as benchmarked in
    ActiveUltraFeedback (https://arxiv.org/abs/2603.09692). ``beta`` scales the bounds;
    ``score`` is the interval width ``W[i, j]``. Deterministic: ``rng`` is not used.
    """
    rule = "infomax"
    mask, mean, std, k, beta = checked_confidence_inputs(inputs, rule, beta, pairs_per_prompt)
    if k == 1:
        picked, best_width = widest_interval_pair(mean, std, beta, mask)
        return picked.to_selection(score=best_width)
    width = preference_interval_width(mean, std, beta)
    picked = top_k_pairs(width, pair_validity(mask), k)
    return picked.to_selection(score=picked.gather(width))
