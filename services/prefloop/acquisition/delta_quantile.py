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
    SMALL_N,
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
_BLOCK_GAPS = 1 << 17  # gaps per block of prompts (1 MiB of float64), to stay in cache


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
    """Per row, the values of descending rank ``lo`` and ``hi - 1`` (NaN where lo >= hi), and
    how many values are strictly larger than the first.

    Why: the two ends of DeltaQuantile's window, by ``np.partition`` (linear time) instead of a
    full sort; values larger than the rank-``lo`` one all land in the partition's top ``lo``
    slots, so they are counted there. Rows sharing a window are partitioned together, so the
    loop is over distinct windows (at most one per distinct response count), never over prompts.
    """
    p, m = flat.shape
    top = np.full(p, np.nan)
    bottom = np.full(p, np.nan)
    above_top = np.zeros(p, dtype=np.int64)
    live = lo < hi
    keys = lo * (m + 1) + hi
    shared = bool(live.all()) and bool(np.all(keys == keys[0]))  # one window for every row
    for key in keys[:1] if shared else np.unique(keys[live]):
        rows = np.arange(p) if shared else np.flatnonzero(live & (keys == key))
        high, low = m - 1 - int(lo[rows[0]]), m - int(hi[rows[0]])  # ascending positions
        part = np.partition(flat[rows] if rows.size < p else flat, sorted({low, high}), axis=1)
        top[rows] = part[:, high]
        bottom[rows] = part[:, low]
        above_top[rows] = np.count_nonzero(part[:, high + 1 :] > top[rows, None], axis=1)
    return top, bottom, above_top


def candidate_ranks(lo: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted-rank cells ``(a, b)`` that can hold the gap of descending rank ``lo``.

    Why: with the upper bounds sorted descending (rank ``a``) and the lower bounds ascending
    (rank ``b``), every gap in the rectangle ``a' <= a, b' <= b`` is at least as large as the
    gap at ``(a, b)`` (rounding is monotone), and at most ``min(a, b) + 1`` of its cells are
    self-pairs. Cells whose rectangle holds at most ``lo + 2`` legal pairs are kept. Then
    (1) the kept cells hold every gap larger than the rank-``lo`` value ``v`` and a gap equal to
    ``v`` (a gap with ``lo + 1`` others at least as large cannot be needed), so ``v`` is their
    rank-``lo`` value; (2) when ``v`` occurs twice or more in the matrix, it occurs at least
    twice among the kept cells (the two occurrences with the smallest rectangles have only
    larger gaps and each other in them), so one kept occurrence means ``v`` is unique.
    """
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = (a + 1) * (b + 1) - np.minimum(a + 1, b + 1) <= lo + 2
    return a[keep], b[keep]


def rank_entry_from_bounds(
    upper: np.ndarray, lower: np.ndarray, mask: np.ndarray, lo: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the gap value of descending rank ``lo``, how many gaps are larger, and the
    value's flat index when it is unique (-1 when it is tied).

    Why: the one-wide window from the ``candidate_ranks`` cells only (about ``lo log lo`` of
    N^2), formed and partitioned per group of rows with the same ``lo`` (the loop is over
    distinct response counts, never over prompts). The candidate gaps are ``upper_i -
    lower_j``, the very numbers of the full matrix; padded responses sort last with infinite
    bounds, so their gaps are -inf.
    """
    p, n = mask.shape
    rows = np.arange(p)[:, None]
    if not mask.all():
        upper, lower = np.where(mask, upper, -np.inf), np.where(mask, lower, np.inf)
    by_upper = np.argsort(-upper, axis=1)
    by_lower = np.argsort(lower, axis=1)
    upper_sorted = upper[rows, by_upper]
    lower_sorted = lower[rows, by_lower]
    lower_rank = np.empty((p, n), dtype=np.int16)  # response -> its rank by lower bound
    lower_rank[rows, by_lower] = np.arange(n, dtype=np.int16)
    self_partner = lower_rank[rows, by_upper]  # upper rank a -> lower rank of the same response
    value = np.full(p, np.nan)
    above = np.zeros(p, dtype=np.int64)
    unique_at = np.full(p, -1, dtype=np.int64)
    for rank in np.unique(lo):
        group = np.arange(p) if np.all(lo == rank) else np.flatnonzero(lo == rank)
        a, b = candidate_ranks(int(rank), n)
        gaps = upper_sorted[group].take(a, axis=1) - lower_sorted[group].take(b, axis=1)
        gaps[self_partner[group].take(a, axis=1) == b] = -np.inf  # self-pairs
        kth = a.size - 1 - int(rank)
        v = np.partition(gaps, kth, axis=1)[:, kth]
        value[group] = v
        above[group] = np.count_nonzero(gaps > v[:, None], axis=1)
        equal = gaps == v[:, None]
        unique = np.count_nonzero(equal, axis=1) == 1
        cell = np.argmax(equal[unique], axis=1)
        where = group[unique]
        unique_at[where] = by_upper[where, a[cell]] * n + by_lower[where, b[cell]]
    return value, above, unique_at


def nth_equal(equal: np.ndarray, nth: np.ndarray) -> np.ndarray:
    """(P,) column of the ``nth[p]``-th (0-based) True entry of each row of ``equal``.

    Why: the tie-break by flat index; without earlier ties (``nth`` 0, the usual case) it is a
    plain argmax, and only rows with earlier ties count their True entries.
    """
    column = np.argmax(equal, axis=1)
    tied = np.flatnonzero(nth > 0)
    if tied.size:
        seen = np.cumsum(equal[tied], axis=1)
        column[tied] = np.argmax(seen > nth[tied, None], axis=1)
    return column


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


def single_entry_window(
    upper: np.ndarray, lower: np.ndarray, mask: np.ndarray, lo: np.ndarray
) -> np.ndarray:
    """(P,) flat index of the gap of descending rank ``lo`` (ties by flat index), per prompt.

    Why: a one-wide window (``epsilon = 0``, the default) holds a single pair, the answer for
    one pair per prompt. ``rank_entry_from_bounds`` finds it without the N x N matrix when its
    value is unique; for prompts where the value is tied, the right occurrence (ties by flat
    index) is found among all the gaps, block by block (the loop is over blocks of about 2^17
    gaps, never over prompts). The gaps are computed as in ``optimistic_gap``, so the
    comparison is exact.
    """
    n = mask.shape[1]
    if n <= SMALL_N or not lo.any():  # few gaps per prompt, or rank 0 (the largest gap)
        gaps = fill_illegal_pairs(upper[:, :, None] - lower[:, None, :], mask, -np.inf)
        flat = gaps.reshape(-1, n * n)
        if not lo.any():  # the first flat argmax, as DeltaUCB
            return np.argmax(flat, axis=1)
        value, _, above = ranked_values(flat, lo, lo + 1)
        return nth_equal(flat == value[:, None], lo - above)
    value, above, index = rank_entry_from_bounds(upper, lower, mask, lo)
    tied = np.flatnonzero(index < 0)  # the value occurs more than once: rank its occurrences
    block = max(1, _BLOCK_GAPS // (n * n))
    for start in range(0, tied.size, block):
        rows = tied[start : start + block]
        gaps = upper[rows, :, None] - lower[rows, None, :]
        fill_illegal_pairs(gaps, mask[rows], -np.inf)
        equal = gaps.reshape(-1, n * n) == value[rows, None]
        index[rows] = nth_equal(equal, lo[rows] - above[rows])
    return index


def first_window_pair(
    gap: np.ndarray, upper: np.ndarray, mask: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """(P,) flat index of the head of DeltaQuantile's priority order, for any window width.

    Why: with one pair per prompt only the first pair of the order matters: among the window's
    pairs the highest first-response upper bound, then the best rank (larger gap, then lower
    flat index), found with masked maxima instead of a stable argsort and a lexsort. ``gap``'s
    illegal entries are overwritten with -inf (legal ones are untouched).
    """
    p, n, _ = gap.shape
    flat = fill_illegal_pairs(gap, mask, -np.inf).reshape(p, n * n)
    top, bottom, _ = ranked_values(flat, lo, hi)
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
    return np.argmax(best.reshape(p, n * n), axis=1)


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
    counts = np.full(p, n) if mask.all() else mask.sum(axis=1)
    lo, hi = quantile_window(counts * (counts - 1), q, eps)
    if k == 1:
        upper, lower = mean + beta * std, mean - beta * std  # as in optimistic_gap
        rows = np.flatnonzero(lo < hi)
        live: slice | np.ndarray = slice(None) if rows.size == p else rows  # no copies if all
        if np.all(hi[live] - lo[live] == 1):
            flat_index = single_entry_window(upper[live], lower[live], mask[live], lo[live])
        else:
            gap = optimistic_gap(mean[live], std[live], beta)
            flat_index = first_window_pair(gap, upper[live], mask[live], lo[live], hi[live])
        first, second = flat_index // n, flat_index % n
        picked = PickedPairs(rows.astype(np.int64), first, second)
        return picked.to_selection(score=upper[rows, first] - lower[rows, second])

    gap = optimistic_gap(mean, std, beta)
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
