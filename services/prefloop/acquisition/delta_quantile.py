"""DeltaQuantile: DeltaUCB relaxed from the top gap to a quantile of the gaps.

ActiveUltraFeedback's code (not its paper) generalises DeltaUCB: sort the ``n(n-1)`` optimistic
gaps ``G[i, j] = UB_i - LB_j`` of a prompt in descending order (ties by flat index), keep the rank
window ``[floor(n(n-1)(q - eps)), floor(n(n-1)(q + eps)))`` (clipped to the list, at least one
wide) and return the pair in the window whose first response has the highest upper bound.
``q = 0, eps = 0`` is exactly DeltaUCB. Larger ``q`` trades the extreme best-vs-worst pair for
harder, closer comparisons. Each prompt uses its own ``n`` (its number of real responses).

Differences from the reference code: ``beta`` is applied to the bounds (it was ignored there);
``floor`` is taken with a 1e-9 slack so that e.g. ``0.29 * 100`` lands on rank 29, not 28.

With ``pairs_per_prompt = k > 1`` the pairs are taken in priority order: first the window's
pairs (highest first-response upper bound first), then the pairs outside it by their rank
distance to the window (ties: the higher-ranked one), counting ``(i, j)`` and ``(j, i)`` once.
"""

from __future__ import annotations

import numpy as np

from prefloop.acquisition._checks import (
    checked_confidence_inputs,
    checked_nonnegative,
)
from prefloop.acquisition._pairs import pair_validity, top_k_in_order
from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.delta_ucb import optimistic_gap
from prefloop.acquisition.registry import register

AUF_PAPER = "https://arxiv.org/abs/2603.09692"
_FLOOR_SLACK = 1e-9


def quantile_window(
    num_pairs: np.ndarray, quantile: float, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt rank window ``[lo, hi)`` over ``num_pairs`` ordered pairs, at least 1 wide.

    Why: the rank band DeltaQuantile chooses from (https://arxiv.org/abs/2603.09692).
    Prompts with no pairs get an empty window.
    """
    total = num_pairs.astype(np.float64)
    lo = np.floor(total * (quantile - epsilon) + _FLOOR_SLACK).astype(np.int64)
    hi = np.floor(total * (quantile + epsilon) + _FLOOR_SLACK).astype(np.int64)
    lo = np.clip(lo, 0, np.maximum(num_pairs - 1, 0))
    hi = np.minimum(np.maximum(hi, lo + 1), num_pairs)
    return lo, hi


@register(
    "delta_quantile",
    paper=AUF_PAPER,
    summary="DeltaQuantile: the pair at quantile q of the optimistic gaps (q=0 is DeltaUCB)",
)
def delta_quantile(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    quantile: float = 0.05,
    epsilon: float = 0.0,
    beta: float = 1.0,
    pairs_per_prompt: int = 1,
) -> Selection:
    """Pick a pair from the ``quantile`` band of optimistic gaps, highest first-arm UB first.

    Why: DeltaUCB's top gap is often a trivially easy comparison (the best response against a
    broken one); a quantile slightly below the top keeps a large expected gap while asking less
    obvious questions (ActiveUltraFeedback code, https://arxiv.org/abs/2603.09692, spec 1.7).
    ``score`` is ``G[i, j]``. Deterministic: ``rng`` is not used.
    """
    rule = "delta_quantile"
    mask, mean, std, k, beta = checked_confidence_inputs(inputs, rule, beta, pairs_per_prompt)
    q = checked_nonnegative(quantile, rule, "quantile")
    eps = checked_nonnegative(epsilon, rule, "epsilon")
    if q > 1:
        raise AcquisitionError(f"{rule}: quantile must be in [0, 1], got {quantile!r}")

    p, n = mask.shape
    valid = pair_validity(mask)
    gap = optimistic_gap(mean, std, beta)
    flat_valid = valid.reshape(p, n * n)
    flat_gap = np.where(flat_valid, gap.reshape(p, n * n), -np.inf)

    by_gap = np.argsort(-flat_gap, axis=1, kind="stable")
    rank = np.empty_like(by_gap)
    np.put_along_axis(rank, by_gap, np.broadcast_to(np.arange(n * n), (p, n * n)), axis=1)

    counts = mask.sum(axis=1)
    lo, hi = quantile_window(counts * (counts - 1), q, eps)
    in_window = flat_valid & (rank >= lo[:, None]) & (rank < hi[:, None])
    distance = np.where(rank < lo[:, None], lo[:, None] - rank, rank - hi[:, None] + 1)

    upper_first = np.repeat(mean + beta * std, n, axis=1)  # flat (i, j) -> UB_i
    tier = np.where(in_window, 0, np.where(flat_valid, 1, 2))
    within_tier = np.where(in_window, -upper_first, distance.astype(np.float64))
    order = np.lexsort((rank, within_tier, tier), axis=-1)

    picked = top_k_in_order(order, valid, k)
    return picked.to_selection(score=picked.gather(gap))
