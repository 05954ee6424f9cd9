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

For one pair per prompt only pairs that can be the widest are evaluated: ``W[i, j]`` is at
most ``tanh((w_i + w_j) / 4)`` with ``w = UB - LB``, so once a few wide pairs are known most
pairs are ruled out without a sigmoid (``width_cutoff``); the pick is exactly the dense one.
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
_WIDTH_SLACK = 1e-12  # widths lie in [0, 1]; far above the few ulps of expit and the sums
_PROBES = 4  # the widest responses whose pairs give the first lower bound on the best width
_BUCKET = 4  # group sizes are rounded up to a multiple of this
_DENSE_MAX_RESPONSES = 8  # below this the pruning costs more than it saves


def preference_interval_width(mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
    """(P, N, N) width ``W[p, i, j]`` of the Bradley-Terry confidence interval on P(i > j).

    Why: the uncertainty of a comparison's outcome, which InfoMax maximises and InfoGain uses
    for its second pick (https://arxiv.org/abs/2603.09692).
    """
    sig = np.asarray(expit(optimistic_gap(mean, std, beta)))
    return np.asarray(sig + sig.transpose(0, 2, 1) - 1.0)


def width_cutoff(
    upper: np.ndarray, lower: np.ndarray, mask: np.ndarray, by_spread: np.ndarray
) -> np.ndarray:
    """Per row, a spread sum ``w_i + w_j`` (``w = UB - LB``) below which no pair is the widest.

    Why: ``W[i, j] = s(a) + s(b) - 1`` with ``a + b = w_i + w_j`` is at most
    ``tanh((w_i + w_j) / 4)`` (the maximum over ``a`` of ``s(a) + s(S - a)`` is at ``a = S / 2``).
    With ``W0`` the largest width among the pairs of the four widest responses
    (``by_spread``), a pair with ``tanh((w_i + w_j) / 4)`` below ``W0`` minus a slack for every
    rounding involved (1e-12 plus 16 ulps of the row's largest bound) cannot be the widest.
    -inf where nothing can be cut.
    """
    p, n = mask.shape
    rows = np.arange(p)[:, None]
    a, b = np.triu_indices(min(_PROBES, n), 1)
    i, j = by_spread[:, a], by_spread[:, b]
    known = expit(upper[rows, i] - lower[rows, j])
    known += expit(upper[rows, j] - lower[rows, i])
    known -= 1.0
    best = np.where(mask[rows, i] & mask[rows, j], known, -np.inf).max(axis=1)
    magnitude = np.max(np.where(mask, np.maximum(np.abs(upper), np.abs(lower)), 0.0), axis=1)
    cap = best - _WIDTH_SLACK - 16 * np.finfo(np.float64).eps * magnitude
    usable = np.isfinite(cap) & (cap > 0)
    cut = 4.0 * np.arctanh(np.where(usable, cap, 0.0))
    cut -= 1e-9 * (1.0 + np.abs(cut))
    return np.where(usable, cut, -np.inf)


def widest_upper_pair(
    upper: np.ndarray, lower: np.ndarray, mask: np.ndarray
) -> tuple[PickedPairs, np.ndarray]:
    """InfoMax's single pair per prompt from every pair ``i < j`` (for few responses).

    Why: ``W`` is exactly symmetric, so its first flat argmax always lies above the diagonal;
    the ``N (N - 1) / 2`` upper pairs in row-major order give the same pair and value as the
    full matrix with half the sigmoids.
    """
    p, n = mask.shape
    first, second = np.triu_indices(n, 1)
    width = expit(upper[:, first] - lower[:, second]) + expit(upper[:, second] - lower[:, first])
    width -= 1.0
    if mask.all():  # every upper pair is legal
        best = np.argmax(width, axis=1) if n >= 2 else np.zeros(p, dtype=np.int64)
        rows = np.arange(p) if n >= 2 else np.zeros(0, dtype=np.int64)
    else:
        legal = mask[:, first] & mask[:, second]
        best = np.argmax(np.where(legal, width, -np.inf), axis=1)
        rows = np.flatnonzero(legal.any(axis=1))
    picked = PickedPairs(rows.astype(np.int64), first[best[rows]], second[best[rows]])
    return picked, np.asarray(width[rows, best[rows]], dtype=np.float64)


def widest_interval_pair(
    mean: np.ndarray, std: np.ndarray, beta: float, mask: np.ndarray
) -> tuple[PickedPairs, np.ndarray]:
    """InfoMax's single pair per prompt and its width, evaluating only pairs that can win.

    Why: by ``width_cutoff`` a pair ``(i, j)`` can only be the widest when
    ``w_i >= cut - max(w)``, so only the widest responses passing that test (typically a
    quarter) are paired with each other; rows are grouped by that count rounded up to a
    multiple of 4 (a loop over at most N / 4 sizes, never over prompts). The widths are the
    numbers of ``preference_interval_width`` (its addition is symmetric in ``i, j``), and among
    equal maxima the lowest flat index ``i * N + j`` with ``i < j`` wins, as the first flat
    argmax of the symmetric matrix does (https://arxiv.org/abs/2603.09692). With at most 8
    responses every upper pair is evaluated (``widest_upper_pair``).
    """
    p, n = mask.shape
    upper = mean + beta * std
    lower = mean - beta * std
    if n <= _DENSE_MAX_RESPONSES:
        return widest_upper_pair(upper, lower, mask)
    spread = np.where(mask, upper - lower, -np.inf)
    by_spread = np.argsort(-spread, axis=1)
    sorted_spread = np.take_along_axis(spread, by_spread, axis=1)
    cut = width_cutoff(upper, lower, mask, by_spread)
    needed = np.count_nonzero(sorted_spread >= (cut - sorted_spread[:, 0])[:, None], axis=1)
    real = np.count_nonzero(mask, axis=1)
    size = np.minimum(-(-np.maximum(needed, 2) // _BUCKET) * _BUCKET, n)
    first = np.zeros(p, dtype=np.int64)
    second = np.zeros(p, dtype=np.int64)
    width = np.full(p, -np.inf)
    rows = np.flatnonzero(real >= 2)
    full = bool(mask.all())
    for k in np.unique(size[rows]):
        group = rows[size[rows] == k]
        members = by_spread[group, :k]  # (G, k) original indices, widest first
        x = np.take_along_axis(upper[group], members, axis=1)[:, :, None]
        x = x - np.take_along_axis(lower[group], members, axis=1)[:, None, :]
        sig = np.asarray(expit(x))
        pair_width = (sig + sig.transpose(0, 2, 1)).reshape(group.size, k * k)
        pair_width -= 1.0
        pair_width[:, :: k + 1] = -np.inf  # self-pairs
        if not full:
            real = np.take_along_axis(mask[group], members, axis=1)
            pair_width[~(real[:, :, None] & real[:, None, :]).reshape(group.size, k * k)] = -np.inf
        cell = np.argmax(pair_width, axis=1)
        best = pair_width[np.arange(group.size), cell]
        a, b = members[np.arange(group.size), cell // k], members[np.arange(group.size), cell % k]
        chosen = np.minimum(a, b) * n + np.maximum(a, b)
        # the maximum sits at (a, b) and (b, a); more cells mean a tie between pairs: the lowest
        # flat index i * N + j (i < j) among them wins
        tied = np.flatnonzero(np.count_nonzero(pair_width == best[:, None], axis=1) > 2)
        if tied.size:
            low = np.minimum(members[tied, :, None], members[tied, None, :]).reshape(tied.size, -1)
            high = np.maximum(members[tied, :, None], members[tied, None, :]).reshape(tied.size, -1)
            at_best = np.where(pair_width[tied] == best[tied, None], low * n + high, n * n)
            chosen[tied] = at_best.min(axis=1)
        first[group], second[group], width[group] = chosen // n, chosen % n, best
    picked = PickedPairs(rows.astype(np.int64), first[rows], second[rows])
    return picked, width[rows]


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
