"""Seeded k-means, candidate-pair enumeration and the cluster-diverse batch selector."""

from __future__ import annotations

import numpy as np
import pytest

from prefloop.acquisition.base import AcquisitionError
from prefloop.acquisition.batch_selection import (
    all_candidate_pairs,
    cluster_diverse_select,
    random_pair_per_prompt,
    rank_within_groups,
    sample_candidate_pairs,
    top_k_pairs,
)
from prefloop.acquisition.kmeans import kmeans, nearest_member_per_cluster


def blobs(sizes: list[int], seed: int = 0, spread: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])[: len(sizes)]
    x = np.concatenate(
        [c + spread * g.normal(size=(s, 2)) for c, s in zip(centres, sizes, strict=True)]
    )
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return x, truth


def test_kmeans_recovers_separated_blobs_and_is_seed_deterministic() -> None:
    x, truth = blobs([20, 15, 25])
    fit = kmeans(x, 3, np.random.default_rng(0), n_init=3)
    for t in range(3):
        assert len(set(fit.labels[truth == t].tolist())) == 1
    assert len(set(fit.labels.tolist())) == 3
    again = kmeans(x, 3, np.random.default_rng(0), n_init=3)
    assert np.array_equal(fit.labels, again.labels)
    np.testing.assert_array_equal(fit.centers, again.centers)
    assert fit.inertia == pytest.approx(float(((x - fit.centers[fit.labels]) ** 2).sum()))


def test_kmeans_handles_duplicates_and_rejects_bad_arguments() -> None:
    x = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5)
    fit = kmeans(x, 4, np.random.default_rng(1))
    assert fit.labels.shape == (10,)
    assert fit.inertia == pytest.approx(0.0)
    with pytest.raises(AcquisitionError, match="n_clusters"):
        kmeans(x, 11, np.random.default_rng(0))
    with pytest.raises(AcquisitionError, match="NaN"):
        kmeans(np.array([[np.nan, 0.0], [1.0, 1.0]]), 1, np.random.default_rng(0))


def test_nearest_member_per_cluster_matches_brute_force() -> None:
    x, _ = blobs([10, 12, 8], seed=2, spread=1.0)
    fit = kmeans(x, 3, np.random.default_rng(0))
    reps = nearest_member_per_cluster(fit)
    for c, r in enumerate(reps):
        members = np.flatnonzero(fit.labels == c)
        d = np.linalg.norm(x[members] - fit.centers[c], axis=1)
        assert r == members[np.argmin(d)]


def test_candidate_pairs_are_all_real_distinct_same_prompt_pairs() -> None:
    mask = np.array(
        [[True, True, True, False], [True, False, True, True], [True, True, False, False]]
    )
    cands = all_candidate_pairs(mask)
    assert cands.size == 3 + 3 + 1
    assert np.all(cands.first < cands.second)
    assert np.all(mask[cands.prompt_index, cands.first] & mask[cands.prompt_index, cands.second])
    sub = sample_candidate_pairs(mask, 4, np.random.default_rng(0))
    assert sub.size == 4
    assert (
        len(
            set(
                zip(sub.prompt_index.tolist(), sub.first.tolist(), sub.second.tolist(), strict=True)
            )
        )
        == 4
    )
    assert sample_candidate_pairs(mask, 50, np.random.default_rng(0)).size == 7
    rand = random_pair_per_prompt(mask, np.random.default_rng(0))
    assert np.all(rand.first != rand.second)
    assert np.all(mask[rand.prompt_index, rand.first] & mask[rand.prompt_index, rand.second])


def test_top_k_with_a_per_prompt_cap_and_group_ranks() -> None:
    assert rank_within_groups(np.array([2, 0, 2, 2, 0])).tolist() == [0, 0, 1, 2, 1]
    scores = np.array([5.0, 4.0, 3.0, 2.0, np.nan])
    groups = np.array([0, 0, 0, 1, 1])
    assert top_k_pairs(scores, groups, 3).tolist() == [0, 1, 2]
    assert top_k_pairs(scores, groups, 3, per_group_cap=1).tolist() == [0, 3]
    assert top_k_pairs(scores, groups, 5, per_group_cap=2).tolist() == [0, 1, 3, 4]


def test_cluster_diverse_allocates_by_mass_sums_to_k_and_covers_clusters() -> None:
    x, truth = blobs([30, 30, 30], seed=3)
    g = np.random.default_rng(3)
    scores = np.where(truth == 0, 3.0, 1.0) + 0.01 * g.random(90)  # cluster 0 holds 60% of mass
    chosen, info = cluster_diverse_select(scores, x, 10, np.random.default_rng(0), n_clusters=3)
    assert chosen.size == 10 == len(set(chosen.tolist()))
    assert sum(info["allocation"]) == 10
    per_blob = np.bincount(truth[chosen], minlength=3)
    assert per_blob.tolist() == [6, 2, 2]
    # Inside a cluster the best scores are taken.
    blob0 = np.flatnonzero(truth == 0)
    best0 = blob0[np.argsort(-scores[blob0])[:6]]
    assert set(best0.tolist()) <= set(chosen.tolist())


def test_cluster_diverse_fills_the_shortfall_of_small_clusters_from_the_global_top() -> None:
    # A one-member cluster with a huge score gets a budget it cannot use.
    x, truth = blobs([1, 20, 20], seed=4)
    scores = np.where(truth == 0, 100.0, 1.0) + 0.001 * np.arange(41)
    chosen, info = cluster_diverse_select(scores, x, 6, np.random.default_rng(0), n_clusters=3)
    assert chosen.size == 6 == len(set(chosen.tolist()))
    assert sum(info["allocation"]) == 6
    assert info["filled_from_global_top"] > 0
    assert 0 in chosen.tolist()
    assert set(np.bincount(truth[chosen], minlength=3).nonzero()[0].tolist()) == {0, 1, 2}


def test_cluster_diverse_small_k_is_top_k() -> None:
    scores = np.array([0.1, 0.9, 0.5])
    chosen, _ = cluster_diverse_select(scores, np.eye(3), 2, np.random.default_rng(0))
    assert chosen.tolist() == [1, 2]


def test_best_per_group_matches_the_sorting_reference() -> None:
    """The O(n) cap-1 path picks exactly what the stable sort + rank filter picks."""
    from prefloop.acquisition.batch_selection import descending_order, rank_within_groups

    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 60))
        groups = np.sort(rng.integers(0, 8, size=n))
        scores = rng.integers(0, 4, size=n).astype(float)  # many ties
        scores[rng.random(n) < 0.1] = np.nan
        order = descending_order(scores)
        ref = order[rank_within_groups(groups[order]) < 1]
        for k in (1, 3, n):
            assert np.array_equal(top_k_pairs(scores, groups, k, per_group_cap=1), ref[:k])
