"""DeltaUCB: the most optimistic predicted quality gap (ActiveUltraFeedback).

For every ordered pair of a prompt's responses the optimistic gap is

    G[i, j] = UB_i - LB_j = (mu_i + beta * sigma_i) - (mu_j - beta * sigma_j),   i != j,

and the rule picks ``argmax G`` (flat argmax, the first index wins ties): the response with the
highest upper confidence bound against the one with the lowest lower bound, or the best pair
with ``i != j`` when one response is both. It is one of the paper's two recommended rules.

Unlike the reference code, ``beta`` is really applied (spec section 8, item 2: there it is
stored but unused, so the effective beta was always the reward model's 1.0); ``beta = 1``
reproduces the paper's runs, ``beta = 2`` is what its DPO-tuned configuration asked for.
"""

from __future__ import annotations

import numpy as np

from prefloop.acquisition._checks import checked_confidence_inputs
from prefloop.acquisition._pairs import top_k_difference_pairs
from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.acquisition.registry import register

AUF_PAPER = "https://arxiv.org/abs/2603.09692"


def optimistic_gap(mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
    """(P, N, N) matrix ``G[p, i, j] = (mu_i + beta sigma_i) - (mu_j - beta sigma_j)``.

    Why: the largest reward gap the model cannot rule out, the quantity DeltaUCB and
    DeltaQuantile rank pairs by (https://arxiv.org/abs/2603.09692).
    """
    upper = mean + beta * std
    lower = mean - beta * std
    return upper[:, :, None] - lower[:, None, :]


@register(
    "delta_ucb",
    paper=AUF_PAPER,
    summary="DeltaUCB: argmax over i != j of UB_i - LB_j, the most optimistic reward gap",
)
def delta_ucb(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    beta: float = 1.0,
    pairs_per_prompt: int = 1,
) -> Selection:
    """Pick the pair(s) with the largest optimistic reward gap ``UB_i - LB_j``.

    Why: ActiveUltraFeedback (https://arxiv.org/abs/2603.09692) finds large-gap pairs give the
    strongest DPO and reward-model gains per annotation; optimism makes the rule also try
    responses whose quality the model is unsure about. ``beta`` widens the bounds;
    ``pairs_per_prompt`` returns the top-k distinct unordered pairs. ``score`` is ``G[i, j]``.
    Deterministic: ``rng`` is not used.
    """
    rule = "delta_ucb"
    mask, mean, std, k, beta = checked_confidence_inputs(inputs, rule, beta, pairs_per_prompt)
    picked, gap = top_k_difference_pairs(mean + beta * std, mean - beta * std, mask, k)
    return picked.to_selection(score=gap)
