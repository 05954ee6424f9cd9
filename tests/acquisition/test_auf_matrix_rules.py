"""DeltaUCB, InfoMax, DeltaQuantile and MaxMinLCB on constructed cases and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _inputs import make_inputs, random_inputs
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from prefloop.acquisition import AcquisitionError, AcquisitionInput, select


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _brute_gap(inputs: AcquisitionInput, p: int, beta: float) -> dict[tuple[int, int], float]:
    real = np.flatnonzero(inputs.mask[p])
    ub = inputs.mean[p] + beta * inputs.std[p]
    lb = inputs.mean[p] - beta * inputs.std[p]
    return {(i, j): float(ub[i] - lb[j]) for i in real for j in real if i != j}


# --- DeltaUCB -------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), beta=st.sampled_from([0.0, 0.5, 1.0, 2.0]), ties=st.booleans()
)
def test_delta_ucb_is_the_first_flat_argmax_of_ub_minus_lb(
    seed: int, beta: float, ties: bool
) -> None:
    inputs = random_inputs(_rng(seed), 6, 5, ties=ties)
    sel = select("delta_ucb", inputs, _rng(), beta=beta)
    for p, i, j, score in zip(sel.prompt_index, sel.first, sel.second, sel.score, strict=True):
        gaps = _brute_gap(inputs, int(p), beta)
        best = max(gaps.values())
        first_best = min((a * 5 + b, (a, b)) for (a, b), g in gaps.items() if g == best)[1]
        assert (int(i), int(j)) == first_best
        assert score == pytest.approx(best)


def test_delta_ucb_beta_is_really_applied() -> None:
    # beta=0: pure mean gap, 0 vs 2. beta=1: response 1's optimism (UB 1.4) beats response 0's 1.0.
    inputs = make_inputs([[1.0, 0.9, 0.0, 0.5]], [[0.0, 0.5, 0.0, 0.0]])
    sel0 = select("delta_ucb", inputs, _rng(), beta=0.0)
    sel1 = select("delta_ucb", inputs, _rng(), beta=1.0)
    assert (sel0.first[0], sel0.second[0]) == (0, 2)
    assert (sel1.first[0], sel1.second[0]) == (1, 2)
    assert sel1.score[0] == pytest.approx(1.4)
    # the reference ignored beta; here beta=3 flips a case that beta=1 does not
    close = make_inputs([[1.0, 0.9, 0.0]], [[0.0, 0.05, 0.0]])
    assert select("delta_ucb", close, _rng(), beta=1.0).first[0] == 0
    assert select("delta_ucb", close, _rng(), beta=3.0).first[0] == 1


def test_delta_ucb_when_one_response_has_both_extreme_bounds() -> None:
    # response 0 has the highest UB and the lowest LB; the best i != j pair is G[1, 0] = 1 + 10.
    inputs = make_inputs([[0.0, 1.0, 0.5]], [[10.0, 0.0, 0.0]])
    sel = select("delta_ucb", inputs, _rng())
    assert (sel.first[0], sel.second[0]) == (1, 0)
    assert sel.score[0] == pytest.approx(11.0)


def test_delta_ucb_top_k_are_the_k_best_unordered_pairs() -> None:
    inputs = random_inputs(_rng(4), 20, 6)
    sel = select("delta_ucb", inputs, _rng(), pairs_per_prompt=3)
    for p in range(20):
        gaps = _brute_gap(inputs, p, 1.0)
        unordered: dict[frozenset[int], tuple[float, tuple[int, int]]] = {}
        for (i, j), g in gaps.items():
            key = frozenset((i, j))
            if key not in unordered or g > unordered[key][0]:
                unordered[key] = (g, (i, j))
        expected = [pair for _, pair in sorted(unordered.values(), reverse=True)[:3]]
        rows = sel.prompt_index == p
        got = list(zip(sel.first[rows].tolist(), sel.second[rows].tolist(), strict=True))
        assert got == expected


def test_delta_ucb_ignores_padding_and_handles_ragged_rows() -> None:
    inputs = make_inputs(
        [[0.0, 9.0, 1.0, -9.0], [5.0, 0.0, 0.0, 0.0]],
        mask=[[True, False, True, False], [True, True, True, True]],
    )
    sel = select("delta_ucb", inputs, _rng(), pairs_per_prompt=2)
    np.testing.assert_array_equal(sel.prompt_index, [0, 1, 1])
    assert (sel.first[0], sel.second[0]) == (2, 0)


# --- InfoMax --------------------------------------------------------------------------------


def _width(inputs: AcquisitionInput, p: int, i: int, j: int, beta: float = 1.0) -> float:
    ub = inputs.mean[p] + beta * inputs.std[p]
    lb = inputs.mean[p] - beta * inputs.std[p]
    return float(expit(ub[i] - lb[j]) - expit(lb[i] - ub[j]))


def test_infomax_picks_the_widest_preference_interval() -> None:
    # equal means: the two largest stds make the widest interval on P(i > j)
    inputs = make_inputs([[0.0, 0.0, 0.0, 0.0]], [[0.1, 2.0, 0.5, 3.0]])
    sel = select("infomax", inputs, _rng())
    assert (sel.first[0], sel.second[0]) == (1, 3)
    assert sel.score[0] == pytest.approx(_width(inputs, 0, 1, 3))
    # close means with large stds beat a confidently decided pair
    decided = make_inputs([[0.0, 0.0, 3.0]], [[1.0, 0.1, 1.0]])
    sel = select("infomax", decided, _rng())
    assert (sel.first[0], sel.second[0]) == (0, 1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), beta=st.sampled_from([0.5, 1.0, 2.0]))
def test_infomax_matches_brute_force_and_orders_first_below_second(seed: int, beta: float) -> None:
    inputs = random_inputs(_rng(seed), 5, 6)
    sel = select("infomax", inputs, _rng(), beta=beta)
    for p, i, j, score in zip(sel.prompt_index, sel.first, sel.second, sel.score, strict=True):
        real = np.flatnonzero(inputs.mask[p])
        best = max(_width(inputs, int(p), a, b, beta) for a, b in itertools.combinations(real, 2))
        assert score == pytest.approx(best)
        assert score == pytest.approx(_width(inputs, int(p), int(i), int(j), beta))
        assert i < j


# --- DeltaQuantile --------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4), ties=st.booleans())
def test_delta_quantile_at_zero_is_delta_ucb(seed: int, k: int, ties: bool) -> None:
    inputs = random_inputs(_rng(seed), 6, 5, ties=ties)
    a = select("delta_quantile", inputs, _rng(), quantile=0.0, epsilon=0.0, pairs_per_prompt=k)
    b = select("delta_ucb", inputs, _rng(), pairs_per_prompt=k)
    np.testing.assert_array_equal(a.prompt_index, b.prompt_index)
    np.testing.assert_array_equal(a.first, b.first)
    np.testing.assert_array_equal(a.second, b.second)
    np.testing.assert_allclose(a.score, b.score)


def _reference_delta_quantile(
    inputs: AcquisitionInput, p: int, q: float, eps: float
) -> tuple[int, int]:
    """Spec 1.7 for one prompt, written as plainly as possible."""
    gaps = _brute_gap(inputs, p, 1.0)
    n_slots = inputs.mask.shape[1]
    ranked = sorted(gaps, key=lambda ij: (-gaps[ij], ij[0] * n_slots + ij[1]))
    m = len(ranked)
    lo = min(max(int(np.floor(m * (q - eps) + 1e-9)), 0), m - 1)
    hi = min(max(int(np.floor(m * (q + eps) + 1e-9)), lo + 1), m)
    window = ranked[lo:hi]
    ub = inputs.mean[p] + inputs.std[p]
    return max(window, key=lambda ij: (ub[ij[0]], -ranked.index(ij)))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    q=st.sampled_from([0.0, 0.05, 0.25, 0.5, 0.9, 1.0]),
    eps=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_delta_quantile_matches_the_spec_per_prompt(seed: int, q: float, eps: float) -> None:
    inputs = random_inputs(_rng(seed), 5, 6)
    sel = select("delta_quantile", inputs, _rng(), quantile=q, epsilon=eps)
    for p, i, j in zip(sel.prompt_index, sel.first, sel.second, strict=True):
        assert (int(i), int(j)) == _reference_delta_quantile(inputs, int(p), q, eps)


def test_delta_quantile_one_is_the_smallest_gap() -> None:
    inputs = make_inputs([[3.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]])
    sel = select("delta_quantile", inputs, _rng(), quantile=1.0)
    assert (sel.first[0], sel.second[0]) == (2, 0)
    assert sel.score[0] == pytest.approx(-3.0)


def test_delta_quantile_rejects_a_quantile_above_one() -> None:
    inputs = make_inputs([[0.0, 1.0]])
    with pytest.raises(AcquisitionError, match="quantile"):
        select("delta_quantile", inputs, _rng(), quantile=1.5)


# --- MaxMinLCB ------------------------------------------------------------------------------


def test_maxmin_lcb_leader_has_the_best_worst_case_not_the_best_mean() -> None:
    # worst cases: r0 -0.55, r1 -0.4 (against r0), r2 -0.65 -> leader r1 (mean 0.9 < 1.0)
    inputs = make_inputs([[1.0, 0.9, 0.95]], [[0.3, 0.0, 0.3]])
    sel = select("maxmin_lcb", inputs, _rng())
    assert (sel.first[0], sel.second[0]) == (1, 0)
    assert sel.score[0] == pytest.approx(-0.4)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), beta=st.sampled_from([0.0, 1.0, 2.0]))
def test_maxmin_lcb_solves_the_max_min_problem(seed: int, beta: float) -> None:
    inputs = random_inputs(_rng(seed), 5, 6)
    sel = select("maxmin_lcb", inputs, _rng(seed), beta=beta)
    for p, i, j in zip(sel.prompt_index, sel.first, sel.second, strict=True):
        real = np.flatnonzero(inputs.mask[p])
        mu, sd = inputs.mean[p], inputs.std[p]

        def lcb(a: int, b: int, mu: np.ndarray = mu, sd: np.ndarray = sd) -> float:
            return float(mu[a] - mu[b] - beta * (sd[a] + sd[b]))

        worst = {a: min(lcb(a, b) for b in real if b != a) for a in real}
        assert worst[int(i)] == pytest.approx(max(worst.values()), abs=1e-4)
        assert lcb(int(i), int(j)) == pytest.approx(worst[int(i)], abs=1e-4)


def test_maxmin_lcb_breaks_ties_at_random_but_reproducibly() -> None:
    inputs = make_inputs([[0.5] * 5], [[0.2] * 5])
    picks = {
        (int(s.first[0]), int(s.second[0]))
        for s in (select("maxmin_lcb", inputs, _rng(seed)) for seed in range(40))
    }
    assert len(picks) > 5
    a = select("maxmin_lcb", inputs, _rng(7))
    b = select("maxmin_lcb", inputs, _rng(7))
    assert (a.first[0], a.second[0]) == (b.first[0], b.second[0])


def test_maxmin_lcb_single_candidate_leads_against_the_full_set() -> None:
    # only response 0 is a candidate; the reference returned (0, 0) here
    inputs = make_inputs([[5.0, 0.0, 0.1]], [[0.0, 0.0, 0.0]])
    sel = select("maxmin_lcb", inputs, _rng(), use_candidate_set=True)
    assert (sel.first[0], sel.second[0]) == (0, 2)
    more = select("maxmin_lcb", inputs, _rng(), use_candidate_set=True, pairs_per_prompt=3)
    assert sel.size == 1 and more.size == 3


def test_maxmin_lcb_candidate_set_with_a_wide_buffer_is_the_full_game() -> None:
    inputs = random_inputs(_rng(2), 30, 6)
    wide = select("maxmin_lcb", inputs, _rng(3), use_candidate_set=True, decision_buffer=1e9)
    plain = select("maxmin_lcb", inputs, _rng(3))
    np.testing.assert_array_equal(wide.first, plain.first)
    np.testing.assert_array_equal(wide.second, plain.second)


def test_maxmin_lcb_candidate_set_excludes_dominated_leaders() -> None:
    # beta=0, zero stds: only the top-mean response beats everyone, so it leads in every prompt
    inputs = random_inputs(_rng(8), 50, 6)
    inputs = make_inputs(np.nan_to_num(inputs.mean), mask=inputs.mask)
    sel = select("maxmin_lcb", inputs, _rng(), use_candidate_set=True, beta=0.0)
    top = np.argmax(np.where(inputs.mask, inputs.mean, -np.inf), axis=1)
    np.testing.assert_array_equal(sel.first, top)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maxmin_lcb_zero_tolerance_breaks_only_exact_ties(seed: int) -> None:
    # issue 7 item 4: argmax_tol=0 made every tie set empty and paired a response with itself
    inputs = random_inputs(_rng(seed), 40, 6)
    sel = select("maxmin_lcb", inputs, _rng(seed), argmax_tol=0.0, pairs_per_prompt=2)
    assert np.all(sel.first != sel.second)
    assert np.all(inputs.mask[sel.prompt_index, sel.first])
    assert np.all(inputs.mask[sel.prompt_index, sel.second])
    first_round = sel.prompt_index != np.roll(sel.prompt_index, 1)
    for p, i, j in zip(
        sel.prompt_index[first_round], sel.first[first_round], sel.second[first_round], strict=True
    ):
        real = np.flatnonzero(inputs.mask[p])
        lcb = {
            (a, b): inputs.mean[p, a] - inputs.mean[p, b] - (inputs.std[p, a] + inputs.std[p, b])
            for a in real
            for b in real
            if a != b
        }
        worst = {a: min(v for (x, _), v in lcb.items() if x == a) for a in real}
        assert worst[int(i)] == max(worst.values())
        assert lcb[(int(i), int(j))] == worst[int(i)]


def test_maxmin_lcb_zero_tolerance_still_breaks_exact_ties_at_random() -> None:
    inputs = make_inputs([[0.5] * 5], [[0.2] * 5])
    picks = {
        (int(s.first[0]), int(s.second[0]))
        for s in (select("maxmin_lcb", inputs, _rng(seed), argmax_tol=0) for seed in range(40))
    }
    assert len(picks) > 5 and all(a != b for a, b in picks)


def test_maxmin_lcb_rejects_a_negative_tolerance_by_name() -> None:
    inputs = make_inputs([[0.5, 0.1]])
    with pytest.raises(AcquisitionError, match="argmax_tol must be finite and >= 0"):
        select("maxmin_lcb", inputs, _rng(), argmax_tol=-1e-4)
