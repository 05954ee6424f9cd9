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


def pair_validity(mask: np.ndarray) -> np.ndarray:
    """(P, N, N) bool: True where ``i != j`` and both responses are real."""
    n = mask.shape[1]
    off_diagonal = ~np.eye(n, dtype=bool)
    return mask[:, :, None] & mask[:, None, :] & off_diagonal[None, :, :]


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


def random_distinct_pairs(rng: np.random.Generator, mask: np.ndarray, k: int) -> PickedPairs:
    """``k`` distinct pairs per prompt, uniformly at random, each in a random orientation.

    Every ordered pair gets an i.i.d. uniform key; an unordered pair ranks by the larger of its
    two keys (so all unordered pairs are equally likely to rank first, second, ...) and takes
    that key's orientation (so each orientation is equally likely).
    """
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
    """Unordered pairs already taken per prompt, for rules that pick ``k`` pairs in rounds."""

    valid: np.ndarray
    taken: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.taken = np.zeros_like(self.valid)

    def open_pairs(self) -> np.ndarray:
        """(P, N, N): legal pairs not taken yet (symmetric when ``valid`` is)."""
        return self.valid & ~self.taken

    def add(self, active: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
        """Mark ``(first, second)`` and its mirror as taken for the active prompts."""
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
