"""Vectorised pair bookkeeping shared by the per-prompt rules.

A per-prompt rule either scores every ordered pair ``(i, j)`` of a prompt's responses with a
(P, N, N) matrix and keeps the best entries (DeltaUCB, InfoMax, MaxMin, DeltaQuantile), or draws
pairs one round at a time (Thompson sampling, UltraFeedback's best-of-4, MaxMinLCB's game). Both
need the same few primitives, all without a Python loop over prompts:

* which ordered pairs are legal (two distinct, unmasked responses): ``pair_validity``;
* the best legal entry per prompt with numpy's first-index tie-break: ``masked_pair_argmax``;
* the top ``k`` distinct *unordered* pairs per prompt, counting ``(i, j)`` and ``(j, i)`` once
  and keeping the orientation that ranks first: ``top_k_pairs`` / ``top_k_in_order``;
* ``k`` distinct uniformly random pairs: ``random_distinct_pairs``;
* a ledger of pairs already taken in earlier rounds, and stacking of round results into a
  prompt-major ``Selection``: ``PairLedger``, ``stack_rounds``.

Prompts with fewer than ``k`` legal pairs simply get fewer pairs (the cap is
``n_p (n_p - 1) / 2`` unordered pairs for ``n_p`` real responses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prefloop.acquisition.base import Selection

SMALL_N = 8
"""Up to this many responses a full (P, N, N) pass is cheaper than O(P N) bookkeeping."""


def pair_validity(mask: np.ndarray) -> np.ndarray:
    """(P, N, N) bool: True where ``i != j`` and both responses are real."""
    n = mask.shape[1]
    off_diagonal = ~np.eye(n, dtype=bool)
    return mask[:, :, None] & mask[:, None, :] & off_diagonal[None, :, :]


def fill_illegal_pairs(matrix: np.ndarray, mask: np.ndarray, value: float) -> np.ndarray:
    """Set the diagonal and every padded row and column of a (P, N, N) matrix to ``value``.

    Why: in place and in O(P N) (plus the padded rows), where ``np.where(pair_validity(mask),
    matrix, value)`` allocates two N x N temporaries; the legal entries are left untouched.
    Returns ``matrix``.
    """
    p, n, _ = matrix.shape
    if matrix.flags.c_contiguous:  # the diagonal as a strided view of the flat rows
        matrix.reshape(p, n * n)[:, :: n + 1] = value
    else:
        matrix[:, np.arange(n), np.arange(n)] = value
    if not mask.all():
        padded = ~mask
        matrix[padded] = value
        matrix.transpose(0, 2, 1)[padded] = value
    return matrix


@dataclass(frozen=True)
class PickedPairs:
    """Pairs as parallel index arrays, prompt-major (all pairs of prompt 0 first, in rank order)."""

    prompt_index: np.ndarray
    first: np.ndarray
    second: np.ndarray

    @property
    def size(self) -> int:
        """Number of pairs picked over all prompts."""
        return len(self.prompt_index)

    def gather(self, matrix: np.ndarray) -> np.ndarray:
        """The (P, N, N) ``matrix`` entry of every picked pair, as a float array."""
        return np.asarray(matrix[self.prompt_index, self.first, self.second], dtype=np.float64)

    def to_selection(
        self,
        score: np.ndarray | None = None,
        pseudo_label: int = 0,
        info: dict[str, Any] | None = None,
    ) -> Selection:
        """Wrap as a ``Selection`` (score NaN when the rule has none; one pseudo-label for all)."""
        m = self.size
        sc = np.full(m, np.nan) if score is None else np.asarray(score, dtype=np.float64)
        return Selection(
            prompt_index=self.prompt_index.astype(np.int64, copy=False),
            first=self.first.astype(np.int64, copy=False),
            second=self.second.astype(np.int64, copy=False),
            score=sc,
            pseudo_label=np.full(m, pseudo_label, dtype=np.int8),
            info=info or {},
        )


def masked_pair_argmax(
    values: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat argmax of ``values`` over legal entries, per prompt; the first flat index wins ties.

    Returns ``(first, second, has_pair)``, each (P,); rows with no legal entry report ``(0, 0)``
    and ``has_pair`` False.
    """
    p, n, _ = values.shape
    flat = np.where(valid, values, -np.inf).reshape(p, n * n)
    best = np.argmax(flat, axis=1)
    has_pair = np.any(valid.reshape(p, n * n), axis=1)
    return best // n, best % n, has_pair


def outer_difference_argmax(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``masked_pair_argmax`` of ``a_i - b_j`` (P, N each) in O(P N), without the N x N matrix.

    Why: DeltaUCB (``UB_i - LB_j``) and MaxMin (``s_i - s_j``) only need the best entry of an
    outer difference. IEEE rounding is monotone, so ``fl(a_i - b_j)`` is largest over ``j != i``
    at ``fl(a_i - min_{j != i} b_j)``: the best row value, then the first row reaching the
    maximum, then the first column reaching it in that row, give exactly the first flat argmax
    of the full matrix (same pair, same rounded value). Returns ``(first, second, has_pair)``.
    """
    p, n = a.shape
    rows = np.arange(p)
    columns = np.arange(n)
    b_real = np.where(mask, b, np.inf)
    lowest = np.argmin(b_real, axis=1)
    lowest_value = b_real[rows, lowest]
    b_real[rows, lowest] = np.inf
    second_value = b_real.min(axis=1)
    others_min = np.where(
        columns[None, :] == lowest[:, None], second_value[:, None], lowest_value[:, None]
    )
    row_best = np.where(mask, a - others_min, -np.inf)
    first = np.argmax(row_best, axis=1)
    best = row_best[rows, first]
    reaches = mask & (a[rows, first][:, None] - b == best[:, None])
    reaches[rows, first] = False
    second = np.argmax(reaches, axis=1)
    has_pair = np.count_nonzero(mask, axis=1) >= 2
    return first, second, has_pair


def top_k_difference_pairs(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray, k: int
) -> tuple[PickedPairs, np.ndarray]:
    """``top_k_pairs`` of the outer difference ``a_i - b_j`` and the picked differences.

    Why: the shared core of DeltaUCB and MaxMin; ``k = 1`` (the default) skips the N x N matrix
    (``outer_difference_argmax``) unless N is so small that the matrix is cheaper than the
    per-row bookkeeping; larger ``k`` ranks the full matrix.
    """
    if k == 1:
        p, n = mask.shape
        if n <= SMALL_N:
            gap = fill_illegal_pairs(a[:, :, None] - b[:, None, :], mask, -np.inf)
            best = np.argmax(gap.reshape(p, n * n), axis=1)
            first, second = best // n, best % n
            counts = np.full(p, n) if mask.all() else np.count_nonzero(mask, axis=1)
            has_pair = counts >= 2
        else:
            first, second, has_pair = outer_difference_argmax(a, b, mask)
        rows = np.flatnonzero(has_pair)
        picked = PickedPairs(rows.astype(np.int64), first[rows], second[rows])
        return picked, np.asarray(a[rows, picked.first] - b[rows, picked.second], np.float64)
    gap = a[:, :, None] - b[:, None, :]
    picked = top_k_pairs(gap, pair_validity(mask), k)
    return picked, picked.gather(gap)


def top_k_in_order(order: np.ndarray, valid: np.ndarray, k: int) -> PickedPairs:
    """The first ``k`` distinct unordered legal pairs per prompt, walking a given priority order.

    ``order`` is (P, N*N): for each prompt a permutation of the flat ordered-pair indices, best
    first; illegal entries must come after every legal one. An unordered pair is represented
    by whichever of its two orientations comes first in ``order``.
    """
    p, n, _ = valid.shape
    nn = n * n
    position = np.empty((p, nn), dtype=np.int64)
    np.put_along_axis(position, order, np.broadcast_to(np.arange(nn), (p, nn)), axis=1)
    position3 = position.reshape(p, n, n)
    representative = valid & (position3 < position3.transpose(0, 2, 1))
    keep_sorted = np.take_along_axis(representative.reshape(p, nn), order, axis=1)
    taken = keep_sorted & (np.cumsum(keep_sorted, axis=1) <= k)
    rows, ranks = np.nonzero(taken)
    flat = order[rows, ranks]
    return PickedPairs(rows.astype(np.int64), flat // n, flat % n)


def top_k_pairs(values: np.ndarray, valid: np.ndarray, k: int) -> PickedPairs:
    """The ``k`` highest-valued distinct unordered pairs per prompt.

    Entries are ranked by value, ties by flat index (the first index wins, as numpy's argmax),
    so ``k = 1`` is exactly ``masked_pair_argmax``. ``(i, j)`` and ``(j, i)`` count once; the
    orientation ranked higher is kept. ``values`` must be finite on legal entries.
    """
    p, n, _ = values.shape
    if k == 1:
        first, second, has_pair = masked_pair_argmax(values, valid)
        rows = np.flatnonzero(has_pair)
        return PickedPairs(rows.astype(np.int64), first[rows], second[rows])
    flat = np.where(valid, values, -np.inf).reshape(p, n * n)
    order = np.argsort(-flat, axis=1, kind="stable")
    return top_k_in_order(order, valid, k)


def nth_real_response(mask: np.ndarray, position: np.ndarray) -> np.ndarray:
    """(P,) column of the ``position[p]``-th (0-based) True entry of each row of ``mask``."""
    if mask.all():
        return position.astype(np.int64, copy=False)
    seen = np.cumsum(mask, axis=1)
    return np.argmax(seen > position[:, None], axis=1)


def random_ordered_pair(rng: np.random.Generator, mask: np.ndarray) -> PickedPairs:
    """One uniformly random ordered pair of distinct real responses per prompt, in O(P N).

    Why: the Random baseline's single pair; each of the ``n (n - 1)`` ordered pairs of a prompt
    with ``n`` real responses is equally likely (the first uniform among the ``n``, the second
    uniform among the other ``n - 1``), with two integer draws per prompt instead of a key for
    every ordered pair. Prompts with fewer than two real responses get no pair.
    """
    p, n = mask.shape
    if n >= 2 and mask.all():  # the same draws as below with every count equal to n
        leader = np.asarray(rng.integers(0, n, size=p))
        other = np.asarray(rng.integers(0, n - 1, size=p))
        other += other >= leader
        return PickedPairs(np.arange(p, dtype=np.int64), leader, other)
    counts = np.count_nonzero(mask, axis=1)
    has_pair = counts >= 2
    first_pos = rng.integers(0, np.maximum(counts, 1))
    second_pos = rng.integers(0, np.maximum(counts - 1, 1))
    second_pos = second_pos + (second_pos >= first_pos)
    rows = np.flatnonzero(has_pair)
    first = nth_real_response(mask[rows], first_pos[rows])
    second = nth_real_response(mask[rows], second_pos[rows])
    return PickedPairs(rows.astype(np.int64), first, second)


def random_distinct_pairs(rng: np.random.Generator, mask: np.ndarray, k: int) -> PickedPairs:
    """``k`` distinct pairs per prompt, uniformly at random, each in a random orientation.

    ``k = 1`` is ``random_ordered_pair``. For larger ``k`` every ordered pair gets an i.i.d.
    uniform key; an unordered pair ranks by the larger of its two keys (so all unordered pairs
    are equally likely to rank first, second, ...) and takes that key's orientation (so each
    orientation is equally likely).
    """
    if k == 1:
        return random_ordered_pair(rng, mask)
    p, n = mask.shape
    keys = rng.random((p, n, n))
    return top_k_pairs(keys, pair_validity(mask), k)


def uniform_choice(rng: np.random.Generator, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One index per row, uniform among the True entries of ``allowed`` (P, N).

    Returns ``(index, has_any)``; rows with nothing allowed report index 0 and has_any False.
    """
    keys = rng.random(allowed.shape)
    index = np.argmax(np.where(allowed, keys, -1.0), axis=-1)
    return index, np.any(allowed, axis=-1)


@dataclass
class PairLedger:
    """Unordered pairs already taken per prompt, for rules that pick ``k`` pairs in rounds.

    Nothing N x N is built before the first pair is recorded: until then the open pairs are
    the legal ones, and the per-response queries (``has_partner``, ``partners``) need only the
    (P, N) mask, so a one-pair call costs O(P N).
    """

    mask: np.ndarray
    taken: np.ndarray | None = field(default=None, init=False)

    def open_pairs(self) -> np.ndarray:
        """(P, N, N): legal pairs not taken yet (symmetric)."""
        valid = pair_validity(self.mask)
        return valid if self.taken is None else valid & ~self.taken

    def has_partner(self) -> np.ndarray:
        """(P, N): responses with at least one open pair."""
        if self.taken is None:
            return self.mask & (np.count_nonzero(self.mask, axis=1) >= 2)[:, None]
        return np.any(self.open_pairs(), axis=2)

    def partners(self, first: np.ndarray) -> np.ndarray:
        """(P, N): the responses whose pair with ``first[p]`` is open (row ``first`` of
        ``open_pairs``)."""
        rows = np.arange(self.mask.shape[0])
        columns = np.arange(self.mask.shape[1])
        open_row = self.mask[rows, first][:, None] & self.mask & (columns != first[:, None])
        if self.taken is not None:
            open_row &= ~self.taken[rows, first]
        return open_row

    def add(self, active: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
        """Mark ``(first, second)`` and its mirror as taken for the active prompts."""
        if self.taken is None:
            p, n = self.mask.shape
            self.taken = np.zeros((p, n, n), dtype=bool)
        rows = np.flatnonzero(active)
        self.taken[rows, first[rows], second[rows]] = True
        self.taken[rows, second[rows], first[rows]] = True


@dataclass
class RoundResults:
    """Per-round picks of a sequential rule, stacked into a prompt-major selection at the end."""

    firsts: list[np.ndarray] = field(default_factory=list)
    seconds: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    actives: list[np.ndarray] = field(default_factory=list)

    def append(
        self, active: np.ndarray, first: np.ndarray, second: np.ndarray, score: np.ndarray
    ) -> None:
        """Record one round: (P,) picks, valid only where ``active``."""
        self.actives.append(active)
        self.firsts.append(first)
        self.seconds.append(second)
        self.scores.append(np.asarray(score, dtype=np.float64))

    def stack(self) -> tuple[PickedPairs, np.ndarray]:
        """All active picks, grouped by prompt and in round order within a prompt."""
        if not self.actives:
            empty = np.zeros(0, dtype=np.int64)
            return PickedPairs(empty, empty, empty), np.zeros(0)
        active = np.stack(self.actives, axis=1)  # (P, rounds)
        rows, rounds = np.nonzero(active)
        first = np.stack(self.firsts, axis=1)[rows, rounds]
        second = np.stack(self.seconds, axis=1)[rows, rounds]
        score = np.stack(self.scores, axis=1)[rows, rounds]
        return PickedPairs(rows.astype(np.int64), first, second), score
