"""InfoGain: a Thompson-sampled first response and its most uncertain opponent.

Adapted by ActiveUltraFeedback from the SEA agent of sail-sg/oat (Liu et al. 2024): the first
response is the argmax of one posterior draw ``mu + beta z sigma``, ``z ~ Uniform(-1, 1)`` (as in
DTS), and the second is the response whose comparison with the first has the widest
Bradley-Terry confidence interval,

    second = argmax_{j != first} sigmoid(UB_first - LB_j) - sigmoid(LB_first - UB_j).

So it exploits (the first pick is probably good) and asks the most informative question about
it. ``beta`` scales both the posterior draw and the bounds ``UB/LB = mu +- beta sigma`` (the
reference used beta only in the draw and fixed the bounds at beta = 1; with the default 1.0 the
two agree). With ``pairs_per_prompt = k`` the draw is repeated ``k`` times, each round excluding
pairs taken before. ``score`` is the interval width of the chosen pair.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from prefloop.acquisition._checks import checked_confidence_inputs
from prefloop.acquisition._sampling import thompson_rounds
from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.acquisition.registry import register

SEA_PAPER = "https://arxiv.org/abs/2411.01493"


@register(
    "infogain",
    paper=SEA_PAPER,
    summary="InfoGain: Thompson-sampled first response vs its most uncertain opponent",
)
def infogain(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    beta: float = 1.0,
    pairs_per_prompt: int = 1,
) -> Selection:
    """Thompson-sample a likely-good response, then pair it with its most uncertain opponent.

    Why: the SEA exploration strategy (https://arxiv.org/abs/2411.01493) as ported into
    ActiveUltraFeedback (https://arxiv.org/abs/2603.09692, spec section 1.7): it keeps the
    comparisons near the top of the reward ranking while maximising what the judge's answer
    tells the reward model.
    """
    rule = "infogain"
    mask, mean, std, k, beta = checked_confidence_inputs(inputs, rule, beta, pairs_per_prompt)

    upper = mean + beta * std
    lower = mean - beta * std
    rows = np.arange(mask.shape[0])

    def widest_second(
        first: np.ndarray, partners: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        # row ``first`` of ``preference_interval_width``, the same rounding, O(P N) per round
        row_width = expit(upper[rows, first][:, None] - lower)
        row_width += expit(upper - lower[rows, first][:, None])
        row_width -= 1.0
        second = np.argmax(np.where(partners, row_width, -np.inf), axis=1)
        return second, row_width[rows, second]

    picked, score = thompson_rounds(rng, mask, mean, std, beta, k, widest_second)
    return picked.to_selection(score=score)
