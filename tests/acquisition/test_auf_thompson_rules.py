"""DTS, DRTS and InfoGain: Uniform(-1,1) posterior draws, retries, low-mean reverse picks."""

from __future__ import annotations

import numpy as np
import pytest
from _inputs import make_inputs, random_inputs
from scipy.special import expit

from prefloop.acquisition import AcquisitionInput, select


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _tile(mean: list[float], std: list[float], prompts: int) -> AcquisitionInput:
    return make_inputs([mean] * prompts, [std] * prompts)


def _rank_from_top(
    inputs: AcquisitionInput, prompt_index: np.ndarray, index: np.ndarray
) -> np.ndarray:
    """Rank of each picked response by mean within its prompt: 0 = best."""
    mean = np.where(inputs.mask, inputs.mean, -np.inf)
    order = np.argsort(-mean, axis=1)
    ranks = np.argsort(order, axis=1)
    return ranks[prompt_index, index]


@pytest.mark.parametrize("rule", ["dts", "drts", "infogain"])
def test_seeded_reproducible_and_seed_sensitive(rule: str) -> None:
    inputs = random_inputs(_rng(1), 200, 8)
    a = select(rule, inputs, _rng(42), pairs_per_prompt=2)
    b = select(rule, inputs, _rng(42), pairs_per_prompt=2)
    c = select(rule, inputs, _rng(43), pairs_per_prompt=2)
    np.testing.assert_array_equal(a.first, b.first)
    np.testing.assert_array_equal(a.second, b.second)
    assert a.info == b.info
    assert not (np.array_equal(a.first, c.first) and np.array_equal(a.second, c.second))


@pytest.mark.parametrize("rule", ["dts", "drts", "infogain"])
def test_thompson_draw_is_uniform_within_the_bounds_not_gaussian(rule: str) -> None:
    # UB_0 = 0.2 < LB_1 = 0.3: a Uniform(-1, 1) draw can never prefer 0; a Gaussian would, often.
    inputs = _tile([0.0, 0.5, -5.0], [0.2, 0.2, 0.0], 2000)
    sel = select(rule, inputs, _rng(0))
    assert np.all(sel.first == 1)


def test_dts_first_and_second_are_both_plausibly_best() -> None:
    inputs = random_inputs(_rng(5), 3000, 8, ragged=False)
    sel = select("dts", inputs, _rng(1))
    ub = inputs.mean + inputs.std
    lb_max = (inputs.mean - inputs.std).max(axis=1)
    plausible = ub >= lb_max[:, None]
    fallback = sel.info["uniform_fallbacks"]
    assert np.all(plausible[sel.prompt_index, sel.first])
    assert np.count_nonzero(~plausible[sel.prompt_index, sel.second]) <= fallback
    assert fallback < sel.size // 2


def test_dts_falls_back_to_uniform_when_one_response_always_wins() -> None:
    # zero std: every retry returns the same argmax, so all 30 retries fail for every prompt
    inputs = _tile([1.0, 3.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], 3000)
    sel = select("dts", inputs, _rng(0))
    assert np.all(sel.first == 1)
    assert sel.info["uniform_fallbacks"] == 3000
    counts = np.bincount(sel.second, minlength=4)
    assert counts[1] == 0
    for other in (0, 2, 3):
        assert abs(counts[other] - 1000) < 120


def test_dts_with_zero_retries_is_uniform_second() -> None:
    inputs = _tile([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], 50)
    sel = select("dts", inputs, _rng(0), max_iterations=0)
    assert sel.info["uniform_fallbacks"] == 50


def test_drts_second_pick_is_low_mean() -> None:
    inputs = random_inputs(_rng(7), 3000, 8, ragged=False)
    drts = select("drts", inputs, _rng(0))
    dts = select("dts", inputs, _rng(0))
    first_rank = _rank_from_top(inputs, drts.prompt_index, drts.first)
    second_rank = _rank_from_top(inputs, drts.prompt_index, drts.second)
    dts_second_rank = _rank_from_top(inputs, dts.prompt_index, dts.second)
    # ranks are 0 (best) .. 7 (worst)
    assert first_rank.mean() < 2.0
    assert second_rank.mean() > 5.0
    assert dts_second_rank.mean() < 3.0
    second_mean = inputs.mean[drts.prompt_index, drts.second]
    first_mean = inputs.mean[drts.prompt_index, drts.first]
    assert np.mean(second_mean < first_mean) > 0.95


def test_drts_with_zero_beta_is_best_versus_worst() -> None:
    inputs = random_inputs(_rng(9), 100, 6)
    drts = select("drts", inputs, _rng(0), beta=0.0)
    maxmin = select("maxmin", inputs, _rng(0), by="reward")
    np.testing.assert_array_equal(drts.first, maxmin.first)
    np.testing.assert_array_equal(drts.second, maxmin.second)
    assert drts.info["uniform_fallbacks"] == 0


def test_drts_constructed_case() -> None:
    inputs = _tile([3.0, 2.0, 1.0, 0.0], [0.1, 0.1, 0.1, 0.1], 100)
    sel = select("drts", inputs, _rng(0))
    assert np.all(sel.first == 0)
    assert np.all(sel.second == 3)


def test_dts_multiple_pairs_never_repeat_a_pair() -> None:
    inputs = _tile([3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], 20)
    sel = select("dts", inputs, _rng(0), pairs_per_prompt=6)
    assert sel.size == 20 * 6
    for p in range(20):
        rows = sel.prompt_index == p
        pairs = {frozenset(x) for x in zip(sel.first[rows], sel.second[rows], strict=True)}
        assert len(pairs) == 6
    # the first three rounds pair the dominant response 0 with each of the others
    first_three = sel.first.reshape(20, 6)[:, :3]
    assert np.all(first_three == 0)


def test_infogain_second_is_the_most_uncertain_opponent_of_the_first() -> None:
    inputs = random_inputs(_rng(3), 400, 7)
    sel = select("infogain", inputs, _rng(1))
    for p, i, j, score in zip(sel.prompt_index, sel.first, sel.second, sel.score, strict=True):
        real = [int(x) for x in np.flatnonzero(inputs.mask[p]) if x != i]
        mu, sd = inputs.mean[p], inputs.std[p]
        width = {
            b: expit(mu[i] + sd[i] - mu[b] + sd[b]) - expit(mu[i] - sd[i] - mu[b] - sd[b])
            for b in real
        }
        best = max(width.values())
        assert width[int(j)] == pytest.approx(best)
        assert score == pytest.approx(best)
        assert int(j) == min(b for b in real if width[b] == best)


def test_infogain_constructed_case() -> None:
    # first is response 0 (LB 4.9 above everyone else's UB except 3's); among its opponents,
    # response 3 (close mean) is far more uncertain a comparison than 1 or 2
    inputs = _tile([5.0, 0.0, 0.1, 4.8], [0.1, 0.1, 0.1, 0.05], 50)
    sel = select("infogain", inputs, _rng(0))
    assert np.all(sel.first == 0)
    assert np.all(sel.second == 3)
