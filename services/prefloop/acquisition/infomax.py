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
from prefloop.acquisition._pairs import pair_validity, top_k_pairs
from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.acquisition.delta_ucb import optimistic_gap
from prefloop.acquisition.registry import register

AUF_PAPER = "https://arxiv.org/abs/2603.09692"


def preference_interval_width(mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
    """(P, N, N) width ``W[p, i, j]`` of the Bradley-Terry confidence interval on P(i > j).

    Why: the uncertainty of a comparison's outcome, which InfoMax maximises and InfoGain uses
    for its second pick (https://arxiv.org/abs/2603.09692).
    """
    x = optimistic_gap(mean, std, beta)
    return np.asarray(expit(x) + expit(x.transpose(0, 2, 1)) - 1.0)


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
    width = preference_interval_width(mean, std, beta)
    picked = top_k_pairs(width, pair_validity(mask), k)
    return picked.to_selection(score=picked.gather(width))
