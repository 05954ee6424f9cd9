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
from prefloop.acquisition._pairs import (
    PickedPairs,
    fill_illegal_pairs,
    pair_validity,
    top_k_in_order,
)
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


def ranked_values(flat: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row, the values of descending rank ``lo`` and ``hi - 1`` (NaN where lo >= hi).

    Why: the two ends of DeltaQuantile's window, by ``np.partition`` (linear time) instead of a
    full sort; rows sharing a window are partitioned together, so the loop is over distinct
    windows (at most one per distinct response count), never over prompts.
    """
    p, m = flat.shape
    top = np.full(p, np.nan)
    bottom = np.full(p, np.nan)
    live = lo < hi
    keys = lo * (m + 1) + hi
    windows = np.unique(keys[live])
    for key in windows:
        rows = np.flatnonzero(live & (keys == key))
        high, low = m - 1 - int(lo[rows[0]]), m - int(hi[rows[0]])  # ascending positions
        part = flat[rows] if rows.size < p else flat.copy()
        part.partition(sorted({low, high}), axis=1)
        top[rows] = part[:, high]
        bottom[rows] = part[:, low]
    return top, bottom


def ranked_ties(
    flat: np.ndarray, value: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, columns)`` of the entries equal to ``value[row]`` whose rank is in ``[lo, hi)``.

    Why: an entry's descending rank (ties by flat index) is the number of larger values plus
    its position among the equal ones; only the (few) equal entries are ranked.
    """
    larger = np.count_nonzero(flat > value[:, None], axis=1)
    rows, columns = np.nonzero(flat == value[:, None])
    row_start = np.searchsorted(rows, rows, side="left")
    rank = larger[rows] + np.arange(rows.size) - row_start
    keep = (rank >= lo[rows]) & (rank < hi[rows])
    return rows[keep], columns[keep]


def first_window_pair(
    gap: np.ndarray, upper: np.ndarray, mask: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The head of DeltaQuantile's priority order per prompt: ``(flat index, has_pair)``.

    Why: with one pair per prompt (the default) only the first pair of the order matters:
    among the window's pairs the highest first-response upper bound, then the best rank
    (larger gap, then lower flat index), found with masked maxima instead of a stable argsort
    and a lexsort. A one-wide window (``epsilon = 0``) is its single entry. ``gap``'s illegal
    entries are overwritten with -inf (legal ones are untouched).
    """
    p, n, _ = gap.shape
    live = lo < hi
    flat = fill_illegal_pairs(gap, mask, -np.inf).reshape(p, n * n)
    top, bottom = ranked_values(flat, lo, hi)
    index = np.zeros(p, dtype=np.int64)
    if np.all(hi[live] - lo[live] == 1):
        rows, columns = ranked_ties(flat, top, lo, hi)
        index[rows] = columns
        return index, live
    inside = (flat < top[:, None]) & (flat > bottom[:, None])
    for end in (top, bottom):
        rows, columns = ranked_ties(flat, end, lo, hi)
        inside[rows, columns] = True
    window = inside.reshape(p, n, n)
    leads = window.any(axis=2)
    best_upper = np.where(leads, upper, -np.inf).max(axis=1)
    best = window & (leads & (upper == best_upper[:, None]))[:, :, None]
    best_gap = np.where(best, gap, -np.inf).reshape(p, n * n).max(axis=1)
    best &= gap == best_gap[:, None, None]
    index[:] = np.argmax(best.reshape(p, n * n), axis=1)
    return index, live


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
    gap = optimistic_gap(mean, std, beta)
    counts = mask.sum(axis=1)
    lo, hi = quantile_window(counts * (counts - 1), q, eps)
    if k == 1:
        flat_index, has_pair = first_window_pair(gap, mean + beta * std, mask, lo, hi)
        rows = np.flatnonzero(has_pair)
        picked = PickedPairs(rows.astype(np.int64), flat_index[rows] // n, flat_index[rows] % n)
        return picked.to_selection(score=picked.gather(gap))

    valid = pair_validity(mask)
    flat_valid = valid.reshape(p, n * n)
    flat_gap = np.where(flat_valid, gap.reshape(p, n * n), -np.inf)
    by_gap = np.argsort(-flat_gap, axis=1, kind="stable")
    rank = np.empty_like(by_gap)
    np.put_along_axis(rank, by_gap, np.broadcast_to(np.arange(n * n), (p, n * n)), axis=1)
    in_window = flat_valid & (rank >= lo[:, None]) & (rank < hi[:, None])
    distance = np.where(rank < lo[:, None], lo[:, None] - rank, rank - hi[:, None] + 1)

    upper_first = np.repeat(mean + beta * std, n, axis=1)  # flat (i, j) -> UB_i
    tier = np.where(in_window, 0, np.where(flat_valid, 1, 2))
    within_tier = np.where(in_window, -upper_first, distance.astype(np.float64))
    order = np.lexsort((rank, within_tier, tier), axis=-1)

    picked = top_k_in_order(order, valid, k)
    return picked.to_selection(score=picked.gather(gap))
