"""ActiveRLHF DUO and the hybrid greedy DPP: uncertainty, diversity and the fill-ups."""

from __future__ import annotations

import numpy as np
import pytest

from prefloop.acquisition.activerlhf_dpp import (
    activerlhf_dpp,
    greedy_dpp_map,
    quality_from_uncertainty,
    symmetric_pair_features,
)
from prefloop.acquisition.activerlhf_duo import activerlhf_duo
from prefloop.acquisition.base import AcquisitionError, AcquisitionInput
from prefloop.acquisition.batch_selection import (
    CandidatePairs,
    member_win_probs,
    sample_candidate_pairs,
)


def ensemble_batch(p: int, n: int, s: int, d: int, seed: int) -> AcquisitionInput:
    g = np.random.default_rng(seed)
    samples = g.normal(size=(p, n, s)) * g.uniform(0.1, 3.0, (p, n, 1))
    mask = np.ones((p, n), bool)
    return AcquisitionInput(
        mean=samples.mean(axis=2),
        std=samples.std(axis=2),
        mask=mask,
        samples=samples,
        features=g.normal(size=(p, n, d)),
    )


def two_groups_batch() -> AcquisitionInput:
    """8 one-pair prompts: pairs 0-3 are the most uncertain (u0 > u1 > u2 > u3); pairs 0, 1
    differ in feature direction x, pairs 2, 3 in direction y; pairs 4-7 are near-certain."""
    a = np.array([4.0, 3.5, 3.0, 2.5, 0.1, 0.1, 0.1, 0.1])
    samples = np.zeros((8, 2, 3))
    samples[:, 0, 0], samples[:, 0, 1] = a, -a
    feats = np.zeros((8, 2, 2))
    feats[[0, 1], 0] = [[5.0, 0.0], [5.1, 0.1]]
    feats[[2, 3], 0] = [[0.0, 5.0], [0.1, 5.1]]
    feats[4:, 0] = np.random.default_rng(0).normal(size=(4, 2))
    mean = samples.mean(axis=2)
    return AcquisitionInput(
        mean=mean,
        std=np.ones_like(mean),
        mask=np.ones((8, 2), bool),
        samples=samples,
        features=feats,
    )


def test_duo_takes_one_pair_per_cluster_not_the_two_most_uncertain() -> None:
    sel = activerlhf_duo(two_groups_batch(), np.random.default_rng(0), max_pairs=2)
    assert sel.size == 2
    chosen = set(sel.prompt_index.tolist())
    assert len(chosen & {0, 1}) == 1 and len(chosen & {2, 3}) == 1
    assert sel.info["kept_top_u"] == 4


def test_duo_returns_max_pairs_distinct_pairs_from_the_uncertain_half() -> None:
    inputs = ensemble_batch(10, 5, 4, 3, seed=1)  # 100 pairs, pool of 40
    assert inputs.samples is not None
    sel = activerlhf_duo(inputs, np.random.default_rng(7), max_pairs=4, n_init=3)
    assert sel.size == 4
    triples = set(
        zip(sel.prompt_index.tolist(), sel.first.tolist(), sel.second.tolist(), strict=True)
    )
    assert len(triples) == 4
    pool = sample_candidate_pairs(inputs.mask, 40, np.random.default_rng(7))
    theta = member_win_probs(inputs.samples, pool)
    u = theta.max(axis=1) - theta.min(axis=1)
    threshold = np.sort(u)[::-1][19]
    assert np.all(sel.score >= threshold - 1e-12)
    pool_triples = set(
        zip(pool.prompt_index.tolist(), pool.first.tolist(), pool.second.tolist(), strict=True)
    )
    assert triples <= pool_triples
    again = activerlhf_duo(inputs, np.random.default_rng(7), max_pairs=4, n_init=3)
    assert np.array_equal(sel.first, again.first) and np.array_equal(
        sel.prompt_index, again.prompt_index
    )


def test_duo_consensual_filter_keeps_only_disputed_pairs() -> None:
    inputs = ensemble_batch(12, 4, 3, 2, seed=2)
    assert inputs.samples is not None
    sel = activerlhf_duo(
        inputs, np.random.default_rng(0), max_pairs=3, consensual_filter=True, n_init=2
    )
    pairs = CandidatePairs(sel.prompt_index, sel.first, sel.second)
    theta = member_win_probs(inputs.samples, pairs)
    assert np.all((theta.min(axis=1) <= 0.5) & (theta.max(axis=1) >= 0.5))
    assert sel.info["after_filter"] <= sel.info["candidates"]


def test_duo_small_offline_pool_returns_every_pair_and_works_without_features() -> None:
    inputs = ensemble_batch(5, 2, 3, 2, seed=3)
    no_feat = AcquisitionInput(
        mean=inputs.mean, std=inputs.std, mask=inputs.mask, samples=inputs.samples
    )
    sel = activerlhf_duo(no_feat, np.random.default_rng(0))
    assert sorted(sel.prompt_index.tolist()) == [0, 1, 2, 3, 4]
    big = ensemble_batch(6, 4, 3, 2, seed=3)
    big_no_feat = AcquisitionInput(mean=big.mean, std=big.std, mask=big.mask, samples=big.samples)
    assert activerlhf_duo(big_no_feat, np.random.default_rng(0), max_pairs=3, n_init=2).size == 3
    with pytest.raises(AcquisitionError, match="oversampling_factor"):
        activerlhf_duo(inputs, np.random.default_rng(0), oversampling_factor=0.5)


def naive_greedy_logdet(lmat: np.ndarray, k: int) -> list[int]:
    chosen: list[int] = []
    while len(chosen) < k:
        best, best_ld = -1, -np.inf
        for i in range(lmat.shape[0]):
            if i in chosen:
                continue
            sign, ld = np.linalg.slogdet(lmat[np.ix_([*chosen, i], [*chosen, i])])
            if sign > 0 and ld > best_ld:
                best, best_ld = i, ld
        if best < 0:
            break
        chosen.append(best)
    return chosen


def test_greedy_dpp_matches_naive_log_det_greedy() -> None:
    g = np.random.default_rng(4)
    x = g.normal(size=(15, 3))
    kmat = np.exp(-0.5 * ((x[:, None] - x[None]) ** 2).sum(-1))
    q = g.uniform(0.5, 1.0, 15)
    fast = greedy_dpp_map(q, lambda j: kmat[j], 6)
    assert fast.tolist() == naive_greedy_logdet(q[:, None] * kmat * q[None], 6)


def test_dpp_prefers_a_diverse_pair_over_a_near_duplicate_of_equal_quality() -> None:
    samples = np.zeros((3, 2, 2))
    samples[:, 0] = [1.0, -1.0]  # identical disagreement, so equal quality everywhere
    feats = np.zeros((3, 2, 2))
    feats[:, 0] = [[3.0, 0.0], [3.0, 0.05], [0.0, 3.0]]  # pairs 0 and 1 are near-duplicates
    mean = samples.mean(axis=2)
    inputs = AcquisitionInput(
        mean=mean,
        std=np.ones_like(mean),
        mask=np.ones((3, 2), bool),
        samples=samples,
        features=feats,
    )
    sel = activerlhf_dpp(inputs, np.random.default_rng(0), max_pairs=2)
    assert sorted(sel.prompt_index.tolist()) in ([0, 2], [1, 2])
    assert sel.info["dpp_selected"] == 2 and sel.info["random_fill"] == 0


def test_dpp_starts_with_the_most_uncertain_pair_and_fills_when_it_stops_early() -> None:
    inputs = ensemble_batch(8, 4, 3, 3, seed=5)
    sel = activerlhf_dpp(inputs, np.random.default_rng(0), max_pairs=3, oversampling_factor=4.0)
    assert sel.size == 3
    assert sel.score[0] == pytest.approx(1.0)  # the top-u candidate has q = 1 (up to 1e-6)
    # Identical candidates: the kernel has rank one, so the DPP stops after one pick.
    same = np.zeros((6, 2, 2))
    same[:, 0] = [1.0, -1.0]
    mean = same.mean(axis=2)
    flat = AcquisitionInput(
        mean=mean,
        std=np.ones_like(mean),
        mask=np.ones((6, 2), bool),
        samples=same,
        features=np.zeros((6, 2, 2)),
    )
    out = activerlhf_dpp(flat, np.random.default_rng(0), max_pairs=4, oversampling_factor=1.5)
    assert out.size == 4 == len(set(out.prompt_index.tolist()))
    assert out.info["dpp_selected"] == 1 and out.info["random_fill"] == 3


def test_pair_features_are_invariant_to_swapping_the_two_responses() -> None:
    inputs = ensemble_batch(4, 3, 3, 2, seed=6)
    assert inputs.samples is not None
    p = np.array([0, 1, 2, 3, 3])
    i, j = np.array([0, 1, 2, 0, 1]), np.array([1, 2, 0, 2, 2])
    f_ab = symmetric_pair_features("t", inputs, inputs.samples, CandidatePairs(p, i, j))
    f_ba = symmetric_pair_features("t", inputs, inputs.samples, CandidatePairs(p, j, i))
    assert f_ab[0] is not None and f_ba[0] is not None
    np.testing.assert_allclose(f_ab[0], f_ba[0])
    np.testing.assert_allclose(f_ab[1], f_ba[1])


def test_quality_map_and_parameter_checks() -> None:
    q = quality_from_uncertainty(np.array([0.0, 0.5, 1.0]), 0.5, 1.0)
    np.testing.assert_allclose(q, [0.5, 0.75, 1.0], atol=1e-5)
    sharp = quality_from_uncertainty(np.array([0.0, 0.5, 1.0]), 0.0, 0.5)
    np.testing.assert_allclose(sharp, [0.0, 0.25, 1.0], atol=1e-5)
    inputs = ensemble_batch(3, 3, 2, 2, seed=7)
    with pytest.raises(AcquisitionError, match="beta"):
        activerlhf_dpp(inputs, np.random.default_rng(0), beta=1.5)
    with pytest.raises(AcquisitionError, match="temp_q"):
        activerlhf_dpp(inputs, np.random.default_rng(0), temp_q=0.0)
