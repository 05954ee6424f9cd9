"""Candidate pairs and batch selection, shared by the batch acquisition rules.

A batch rule scores *candidate pairs* (two distinct, real responses to the same prompt) and
then picks at most ``max_pairs`` of them across the whole batch. This module holds the pieces
every such rule needs, all vectorised over prompts:

* enumerating the candidates: every i < j of every prompt (``all_candidate_pairs``), a seeded
  random subset of them (``sample_candidate_pairs``, ActiveRLHF's oversampled pool) or one
  random distinct pair per prompt (``random_pair_per_prompt``, ADPO's minibatch pair);
* choosing among scored candidates: plain top-k with an optional per-prompt cap
  (``top_k_pairs``: AE-DPO, US-DPO, BGPM ``top_k`` / ``per_prompt``), and the
  ``ClusterDiverseSelector`` of the BGPM repository (``cluster_diverse_select``, spec
  ``seeds_001_004`` section 3.5, https://arxiv.org/abs/2410.02197): k-means on pair features,
  budget per cluster proportional to the cluster's summed score, top scores inside each
  cluster, shortfall filled from the global top;
* small input checks shared by the rules (shapes, finiteness on the mask, the budget).

Ties are always broken by candidate order (prompt, then i, then j), so selections are
deterministic given the inputs and the generator's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.kmeans import kmeans


@dataclass(frozen=True)
class CandidatePairs:
    """Parallel arrays of C candidate pairs (row of the batch, first and second response)."""

    prompt_index: np.ndarray
    first: np.ndarray
    second: np.ndarray

    @property
    def size(self) -> int:
        return int(self.prompt_index.size)

    def take(self, idx: np.ndarray) -> CandidatePairs:
        """The candidates at positions ``idx`` (in that order)."""
        return CandidatePairs(self.prompt_index[idx], self.first[idx], self.second[idx])

    def gather(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-response ``values`` (P, N, ...) looked up for the first and second response."""
        return (
            values[self.prompt_index, self.first],
            values[self.prompt_index, self.second],
        )

    def to_selection(
        self,
        idx: np.ndarray,
        score: np.ndarray,
        pseudo_label: np.ndarray | None = None,
        info: dict[str, Any] | None = None,
    ) -> Selection:
        """A ``Selection`` of the candidates at ``idx`` with their scores (aligned to ``idx``)."""
        idx = np.asarray(idx, dtype=np.int64)
        pl = np.zeros(idx.size, np.int8) if pseudo_label is None else pseudo_label
        return Selection(
            self.prompt_index[idx].astype(np.int64),
            self.first[idx].astype(np.int64),
            self.second[idx].astype(np.int64),
            np.asarray(score, dtype=np.float64),
            np.asarray(pl, dtype=np.int8),
            info or {},
        )


def all_candidate_pairs(mask: np.ndarray) -> CandidatePairs:
    """Every unordered pair i < j of real responses of every prompt, ordered by (prompt, i, j).

    Why: the offline rules (AE-DPO, US-DPO, BGPM) score the whole pool; here the pool is every
    same-prompt pair, so a prompt with exactly two responses contributes its one pair.
    """
    mask = np.asarray(mask, dtype=bool)
    n = mask.shape[1]
    iu, ju = np.triu_indices(n, k=1)
    valid = mask[:, iu] & mask[:, ju]
    p, t = np.nonzero(valid)
    return CandidatePairs(p.astype(np.int64), iu[t].astype(np.int64), ju[t].astype(np.int64))


def sample_candidate_pairs(
    mask: np.ndarray, n_candidates: int, rng: np.random.Generator
) -> CandidatePairs:
    """``n_candidates`` distinct random same-prompt pairs, uniform over all pairs of the batch.

    Why: ActiveRLHF scores an oversampled random pool (``oversampling_factor`` x the number of
    queries) rather than every pair. When fewer pairs exist, all of them are returned and the
    generator is not consumed.
    """
    cands = all_candidate_pairs(mask)
    if cands.size <= n_candidates:
        return cands
    idx = np.sort(rng.choice(cands.size, size=n_candidates, replace=False))
    return cands.take(idx)


def require_two_per_prompt(rule: str, mask: np.ndarray) -> None:
    """Raise if a prompt row has fewer than two real responses (a per-prompt pair is needed)."""
    short = np.flatnonzero(np.asarray(mask, dtype=bool).sum(axis=1) < 2)
    if short.size:
        raise AcquisitionError(
            f"{rule}: prompt rows {short[:5].tolist()} have fewer than 2 responses; nothing to pair"
        )


def random_pair_per_prompt(mask: np.ndarray, rng: np.random.Generator) -> CandidatePairs:
    """One uniformly random ordered pair of distinct real responses for every prompt.

    Why: ADPO decides per minibatch pair; with N responses the analogue of the dataset's one
    (chosen, rejected) pair is a random distinct pair. Random keys on the real responses,
    top two by key, give a uniform ordered pair without a loop over prompts. Every row needs
    two real responses.
    """
    require_two_per_prompt("random_pair_per_prompt", mask)
    mask = np.asarray(mask, dtype=bool)
    keys = np.where(mask, rng.random(mask.shape), -1.0)
    order = np.argsort(-keys, axis=1, kind="stable")
    p = np.arange(mask.shape[0], dtype=np.int64)
    return CandidatePairs(p, order[:, 0].astype(np.int64), order[:, 1].astype(np.int64))


def rank_within_groups(groups: np.ndarray) -> np.ndarray:
    """Position of every element among the elements of its group, in array order (0-based)."""
    groups = np.asarray(groups)
    idx = np.argsort(groups, kind="stable")
    gs = groups[idx]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]]) if gs.size else np.array([], int)
    counts = np.diff(np.r_[starts, gs.size])
    ranks_sorted = np.arange(gs.size) - np.repeat(starts, counts)
    ranks = np.empty(gs.size, dtype=np.int64)
    ranks[idx] = ranks_sorted
    return ranks


def descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices by score, highest first; NaN counts as lowest; ties keep candidate order."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    return np.argsort(-s, kind="stable")


def top_k_pairs(
    scores: np.ndarray, groups: np.ndarray, k: int, per_group_cap: int | None = None
) -> np.ndarray:
    """The k best candidates by score, at most ``per_group_cap`` from any one prompt.

    Why: AE-DPO / US-DPO keep the ``torch.topk`` of the candidate scores; in a batch of
    prompts a cap of one pair per prompt spreads the judge's budget over prompts.
    """
    if per_group_cap == 1:
        return _best_per_group(scores, np.asarray(groups, dtype=np.int64))[:k]
    order = descending_order(scores)
    if per_group_cap is not None:
        rank = rank_within_groups(np.asarray(groups)[order])
        order = order[rank < per_group_cap]
    return order[:k]


def _best_per_group(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's best candidate, then those by score: the cap-1 case of ``top_k_pairs``.

    Why: one pair per prompt is the common case, and over a large batch (1.2 M candidate pairs
    for 10,000 prompts x 16 responses) two O(n log n) sorts dominate the rule's time; this is
    O(n) plus a sort of one winner per prompt. Same result as the sort: NaN is lowest, ties go
    to the earlier candidate.
    """
    n = scores.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    s = np.where(np.isnan(scores), -np.inf, scores)
    n_groups = int(groups.max()) + 1
    best = np.full(n_groups, -np.inf)
    np.maximum.at(best, groups, s)
    is_best = s == best[groups]
    first = np.full(n_groups, n, dtype=np.int64)
    np.minimum.at(first, groups[is_best], np.flatnonzero(is_best))
    winners = np.sort(first[first < n])
    return winners[np.argsort(-s[winners], kind="stable")]


def cluster_diverse_select(
    scores: np.ndarray,
    features: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    n_clusters: int | None = None,
    n_init: int = 4,
    max_iter: int = 50,
) -> tuple[np.ndarray, dict[str, Any]]:
    """BGPM's ClusterDiverseSelector: spread the batch over clusters by uncertainty mass.

    Why (https://arxiv.org/abs/2410.02197, b-gpm ``batch_selection.py``): a plain top-k tends to
    pick many near-identical pairs; clustering first and giving each cluster a budget
    proportional to its summed score keeps the batch both informative and diverse.

    Steps: C = ``n_clusters`` or max(2, floor(sqrt(k))), capped at min(n, k); k-means (seeded
    from ``rng``, k-means++ init); alloc_c = max(1, round(k S_c / sum S)), then the largest
    allocation is decremented / the smallest incremented until the total is exactly k; the top
    alloc_c by score inside each cluster; any shortfall (clusters smaller than their budget)
    is filled from the best remaining scores. With k <= 2 it is plain top-k, as upstream.
    The repository seeds k-means with a fixed 42 and one random init; here the seed is the
    run's generator and k-means++ with ``n_init`` restarts is used.

    Returns:
        (indices of the chosen candidates, diagnostics with the allocation).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    k = min(k, n)
    if k <= 2:
        return top_k_pairs(scores, np.zeros(n), k), {"clusters": 0}
    c = n_clusters if n_clusters is not None else max(2, int(np.sqrt(k)))
    if c < 1:
        raise AcquisitionError(f"cluster_diverse: n_clusters={n_clusters} must be >= 1")
    c = min(c, n, k)
    labels = kmeans(features, c, rng, n_init=n_init, max_iter=max_iter).labels
    clean = np.where(np.isfinite(scores), scores, 0.0)
    mass = np.bincount(labels, weights=clean, minlength=c)
    alloc = np.maximum(1, np.round(k * mass / (mass.sum() + 1e-8)).astype(np.int64))
    while alloc.sum() > k:
        alloc[np.argmax(alloc)] -= 1
    while alloc.sum() < k:
        alloc[np.argmin(alloc)] += 1
    order = descending_order(scores)
    rank = rank_within_groups(labels[order])
    chosen = order[rank < alloc[labels[order]]]
    shortfall = k - chosen.size
    if shortfall > 0:
        taken = np.zeros(n, dtype=bool)
        taken[chosen] = True
        rest = order[~taken[order]]
        chosen = np.concatenate([chosen, rest[:shortfall]])
    info = {
        "clusters": int(c),
        "allocation": alloc.tolist(),
        "cluster_sizes": np.bincount(labels, minlength=c).tolist(),
        "filled_from_global_top": int(max(shortfall, 0)),
    }
    return chosen.astype(np.int64), info


def resolve_budget(rule: str, max_pairs: int | None, n_prompts: int) -> int:
    """``max_pairs`` or, when None, one pair per prompt; must be >= 1."""
    if max_pairs is None:
        return n_prompts
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, int | np.integer):
        raise AcquisitionError(f"{rule}: max_pairs must be an integer or None, got {max_pairs!r}")
    if max_pairs < 1:
        raise AcquisitionError(f"{rule}: max_pairs must be >= 1, got {max_pairs}")
    return int(max_pairs)


def check_per_prompt_cap(rule: str, max_pairs_per_prompt: int) -> None:
    """Reject a per-prompt cap that is not an integer >= 1."""
    if (
        isinstance(max_pairs_per_prompt, bool)
        or not isinstance(max_pairs_per_prompt, int | np.integer)
        or max_pairs_per_prompt < 1
    ):
        raise AcquisitionError(
            f"{rule}: max_pairs_per_prompt must be an integer >= 1, got {max_pairs_per_prompt!r}"
        )


def check_per_response(
    rule: str,
    name: str,
    values: np.ndarray | None,
    inputs: AcquisitionInput,
    *,
    ndim: int = 2,
    nonnegative: bool = False,
) -> np.ndarray:
    """``values`` as float64 after checking it is (P, N, ...) and finite on real responses.

    Why: a rule must fail with a message naming the rule, the array and the prompt rows at
    fault, not deep in numpy. Padded slots may hold anything; they are returned as 0 so that
    later arithmetic never sees NaN (the mask, not the value, keeps padding out of play).
    """
    if values is None:
        raise AcquisitionError(f"{rule}: inputs.{name} is required but missing")
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != ndim or arr.shape[:2] != inputs.shape:
        want = "(P, N)" if ndim == 2 else "(P, N, " + ", ".join("?" * (ndim - 2)) + ")"
        raise AcquisitionError(
            f"{rule}: inputs.{name} has shape {arr.shape}, expected {want} with "
            f"(P, N) = {inputs.shape}"
        )
    mask = np.asarray(inputs.mask, dtype=bool).reshape(inputs.shape + (1,) * (ndim - 2))
    bad = mask & ~np.isfinite(arr)
    if nonnegative:
        bad |= mask & (arr < 0)
    if np.any(bad):
        rows = np.flatnonzero(bad.reshape(inputs.shape[0], -1).any(axis=1))
        what = "NaN/inf or negative" if nonnegative else "NaN/inf"
        raise AcquisitionError(
            f"{rule}: inputs.{name} has {what} values on real responses "
            f"(prompt rows {rows[:5].tolist()}{' ...' if rows.size > 5 else ''})"
        )
    return np.where(mask, arr, 0.0)


def implicit_reward(rule: str, inputs: AcquisitionInput) -> np.ndarray:
    """mu - ref_logp, the DPO implicit reward up to beta (ref = 0 without a policy in the loop).

    Why: AE-DPO, AE-Borda and ADPO all act on r(x, y) = log pi(y|x) - log pi_ref(y|x); with a
    reward model and no reference policy, ``ref_logp`` is None and r = mu.
    """
    mu = check_per_response(rule, "mean", inputs.mean, inputs)
    if inputs.ref_logp is None:
        return mu
    return mu - check_per_response(rule, "ref_logp", inputs.ref_logp, inputs)


def member_win_probs(samples: np.ndarray, cands: CandidatePairs) -> np.ndarray:
    """(C, S) theta_e = sigmoid(r_e(first) - r_e(second)) for every ensemble member e.

    Why: ActiveRLHF measures disagreement between the members' Bradley-Terry probabilities
    (https://github.com/bkuen/active-rlhf, ``queries/uncertainty.py``).
    """
    si, sj = cands.gather(samples)
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * (si - sj))), dtype=np.float64)


def zscore_columns(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Standardise every column across rows (population std, +eps so constant columns -> 0)."""
    return np.asarray((x - x.mean(axis=0)) / (x.std(axis=0) + eps), dtype=np.float64)
