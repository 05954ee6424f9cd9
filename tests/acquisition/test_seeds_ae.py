"""AE-DPO, US-DPO and AE-Borda-DPO: their defining properties on hand-built batches."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from prefloop.acquisition.ae_borda import ae_borda
from prefloop.acquisition.ae_dpo import ae_dpo
from prefloop.acquisition.base import AcquisitionError, AcquisitionInput
from prefloop.acquisition.uncertainty_sampling import us_dpo


def batch(mean: list[list[float]], std: list[list[float]], **kw: np.ndarray) -> AcquisitionInput:
    m = np.asarray(mean, dtype=float)
    return AcquisitionInput(
        mean=m, std=np.asarray(std, dtype=float), mask=kw.pop("mask", np.ones(m.shape, bool)), **kw
    )


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_ae_dpo_prefers_the_uncertain_better_arm_and_us_dpo_the_largest_variance() -> None:
    # Prompt 0: a sure winner (10 +- 0.1) against a very uncertain loser (0 +- 3): the better
    # arm's CI is narrow (0.4) but the mean variance is large (4.5).
    # Prompt 1: two overlapping arms (0 +- 1): better-arm CI width 4, mean variance 1.
    inputs = batch([[10.0, 0.0], [0.0, 0.0]], [[0.1, 3.0], [1.0, 1.0]])
    ae = ae_dpo(inputs, rng(), max_pairs=1)
    us = us_dpo(inputs, rng(), max_pairs=1)
    assert ae.prompt_index.tolist() == [1]
    assert ae.score[0] == pytest.approx(4.0)
    assert us.prompt_index.tolist() == [0]
    assert us.score[0] == pytest.approx((0.01 + 9.0) / 2)


def test_ae_dpo_alpha_matches_the_formula_with_reference_logprobs() -> None:
    g = rng(3)
    mean, std, ref = g.normal(size=(3, 5)), g.uniform(0.1, 2.0, (3, 5)), g.normal(size=(3, 5))
    inputs = AcquisitionInput(mean=mean, std=std, mask=np.ones((3, 5), bool), ref_logp=ref)
    sel = ae_dpo(inputs, rng(), kappa=1.5, max_pairs=30, max_pairs_per_prompt=10)
    assert sel.size == 30  # every pair of every prompt
    r = mean - ref
    for p, i, j, s in zip(sel.prompt_index, sel.first, sel.second, sel.score, strict=True):
        up = max(r[p, i] + 1.5 * std[p, i], r[p, j] + 1.5 * std[p, j])
        lo = max(r[p, i] - 1.5 * std[p, i], r[p, j] - 1.5 * std[p, j])
        assert s == pytest.approx(up - lo)
    assert np.all(np.diff(sel.score) <= 1e-12)  # best first


def test_ae_dpo_widest_pair_within_a_prompt_and_per_prompt_cap() -> None:
    # b (0 +- 1) vs d (0 +- 3) gives the widest better-arm CI: 6 - (-2) = 8.
    inputs = batch([[10.0, 0.0, 0.0, 0.0]], [[0.1, 1.0, 0.5, 3.0]])
    one = ae_dpo(inputs, rng())
    assert (one.first[0], one.second[0]) == (1, 3)
    assert one.score[0] == pytest.approx(8.0)
    capped = ae_dpo(inputs, rng(), max_pairs=5, max_pairs_per_prompt=2)
    assert capped.size == 2
    uncapped = ae_dpo(inputs, rng(), max_pairs=5, max_pairs_per_prompt=6)
    assert uncapped.size == 5


def test_ae_and_us_skip_padded_responses_and_handle_two_response_prompts() -> None:
    mask = np.array([[True, True, False], [True, False, True]])
    mean = np.array([[0.0, 1.0, np.nan], [0.0, np.nan, 2.0]])
    std = np.array([[1.0, 1.0, np.nan], [0.5, np.nan, 0.5]])
    inputs = AcquisitionInput(mean=mean, std=std, mask=mask)
    for rule in (ae_dpo, us_dpo):
        sel = rule(inputs, rng())
        assert sel.size == 2
        assert sorted(
            zip(sel.prompt_index.tolist(), sel.first.tolist(), sel.second.tolist(), strict=True)
        ) == [
            (0, 0, 1),
            (1, 0, 2),
        ]
        assert np.all(np.isfinite(sel.score))


def test_ae_dpo_rejects_bad_parameters_and_inputs() -> None:
    inputs = batch([[0.0, 1.0]], [[1.0, 1.0]])
    with pytest.raises(AcquisitionError, match="max_pairs"):
        ae_dpo(inputs, rng(), max_pairs=0)
    with pytest.raises(AcquisitionError, match="max_pairs_per_prompt"):
        us_dpo(inputs, rng(), max_pairs_per_prompt=0)
    with pytest.raises(AcquisitionError, match="kappa"):
        ae_dpo(inputs, rng(), kappa=-1.0)
    with pytest.raises(AcquisitionError, match=r"inputs\.std .*negative"):
        ae_dpo(batch([[0.0, 1.0]], [[-1.0, 1.0]]), rng())
    with pytest.raises(AcquisitionError, match=r"inputs\.mean .*NaN.*rows \[0\]"):
        ae_dpo(batch([[np.nan, 1.0]], [[1.0, 1.0]]), rng())


def borda_reference(
    r: np.ndarray, s: np.ndarray, mask: np.ndarray, kappa: float, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Loop-based reference: alpha(x) and argmax-UCB response for every prompt."""
    alphas, stars = [], []
    for p in range(r.shape[0]):
        idx = np.flatnonzero(mask[p])
        ucb, lcb = {}, {}
        for k in idx:
            others = [m for m in idx if m != k]
            ucb[k] = np.mean(
                [
                    expit(beta * ((r[p, k] + kappa * s[p, k]) - (r[p, m] - kappa * s[p, m])))
                    for m in others
                ]
            )
            lcb[k] = np.mean(
                [
                    expit(beta * ((r[p, k] - kappa * s[p, k]) - (r[p, m] + kappa * s[p, m])))
                    for m in others
                ]
            )
        alphas.append(max(ucb.values()) - max(lcb.values()))
        stars.append(max(idx, key=lambda k: (ucb[k], -k)))
    return np.array(alphas), np.array(stars)


def test_ae_borda_matches_a_loop_reference_and_picks_the_largest_gap() -> None:
    g = rng(7)
    p, n = 6, 5
    mean, std = g.normal(size=(p, n)), g.uniform(0.05, 1.5, (p, n))
    mask = np.ones((p, n), bool)
    mask[1, 3:] = False
    mask[4, 0] = False
    ref = g.normal(scale=0.3, size=(p, n))
    inputs = AcquisitionInput(mean=np.where(mask, mean, np.nan), std=std, mask=mask, ref_logp=ref)
    alpha, star = borda_reference(mean - ref, std, mask, 2.0, 1.0)
    sel = ae_borda(inputs, rng(), max_pairs=3)
    assert sel.prompt_index.tolist() == np.argsort(-alpha, kind="stable")[:3].tolist()
    np.testing.assert_allclose(sel.score, alpha[sel.prompt_index])
    assert sel.first.tolist() == star[sel.prompt_index].tolist()
    assert np.all(sel.first != sel.second)
    assert np.all(mask[sel.prompt_index, sel.second])


def test_ae_borda_uncertain_prompt_wins_and_rival_is_uniform_over_other_responses() -> None:
    # Prompt 0 is certain (tiny stds), prompt 1 has one very uncertain response, which is
    # the optimistic best and so the one played.
    mean = [[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]]
    std = [[0.01, 0.01, 0.01, 0.01], [0.1, 0.1, 3.0, 0.1]]
    inputs = batch(mean, std)
    sel = ae_borda(inputs, rng(), max_pairs=1)
    assert sel.prompt_index.tolist() == [1]
    assert sel.first.tolist() == [2]
    rivals = [int(ae_borda(inputs, rng(s), max_pairs=1).second[0]) for s in range(200)]
    counts = np.bincount(rivals, minlength=4)
    assert counts[2] == 0
    assert all(c > 40 for c in counts[[0, 1, 3]])  # about 67 each


def test_ae_borda_two_response_prompts_and_determinism() -> None:
    inputs = batch([[0.0, 1.0], [0.0, 0.1], [5.0, -5.0]], [[1.0, 1.0], [2.0, 2.0], [0.1, 0.1]])
    a = ae_borda(inputs, rng(5))
    b = ae_borda(inputs, rng(5))
    assert a.size == 3
    assert np.array_equal(a.prompt_index, b.prompt_index)
    assert np.array_equal(a.first, b.first)
    assert np.array_equal(a.second, b.second)
    assert set(zip(a.first.tolist(), a.second.tolist(), strict=True)) <= {(0, 1), (1, 0)}
    assert a.prompt_index[-1] == 2  # the confident prompt has the smallest gap
    with pytest.raises(AcquisitionError, match="beta"):
        ae_borda(inputs, rng(), beta=0.0)
