"""The O(P N) one-pair paths give exactly the picks of the general N x N machinery.

Issue 7 (speed): DeltaUCB, MaxMin, InfoMax, DeltaQuantile, DeltaQwen and MaxMinLCB have
dedicated paths for one pair per prompt (the default), and the Thompson retries are drawn
block by block (tested against the eager draw they replaced). The general path (``pairs_per_prompt
> 1``) still ranks the full pair matrix, and its first pair per prompt is by definition the
one-pair pick, so comparing the two on ragged, tie-heavy and rounding-sensitive batches pins
the fast paths to the behaviour the other tests hold against the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from _inputs import random_inputs, required_params

from prefloop.acquisition import AcquisitionInput, Selection, select
from prefloop.acquisition._pairs import (
    PairLedger,
    masked_pair_argmax,
    outer_difference_argmax,
    pair_validity,
    uniform_choice,
)
from prefloop.acquisition._sampling import retry_partner
from prefloop.acquisition.infomax import widest_interval_pair, widest_upper_pair

SEEDS = range(12)
CASES = [
    ("delta_ucb", {}),
    ("delta_ucb", {"beta": 0.0}),
    ("maxmin", {}),
    ("maxmin", {"by": "reward"}),
    ("infomax", {}),
    ("infomax", {"beta": 2.5}),
    ("delta_quantile", {}),
    ("delta_quantile", {"quantile": 0.0}),
    ("delta_quantile", {"quantile": 1.0}),
    ("delta_quantile", {"quantile": 0.3, "epsilon": 0.1}),
    ("delta_quantile", {"quantile": 0.5, "epsilon": 0.5}),
    ("delta_qwen", {}),
]


def batch(seed: int) -> AcquisitionInput:
    """Ragged or full, tie-heavy or continuous, and every fifth at 1e15 scale (rounding)."""
    g = np.random.default_rng(seed)
    inputs = random_inputs(g, 25, int(g.integers(2, 12)), ragged=seed % 2 == 0, ties=seed % 3 == 0)
    if seed % 5 == 4:
        return AcquisitionInput(
            mean=inputs.mean * 1e15 + 1e16,
            std=inputs.std * 1e15,
            mask=inputs.mask,
            judge_scores=inputs.judge_scores * 1e17 + 3.0,
            models=inputs.models,
        )
    return inputs


def first_per_prompt(sel: Selection) -> Selection:
    head = np.flatnonzero(np.r_[True, sel.prompt_index[1:] != sel.prompt_index[:-1]])
    return Selection(
        sel.prompt_index[head],
        sel.first[head],
        sel.second[head],
        sel.score[head],
        sel.pseudo_label[head],
    )


@pytest.mark.parametrize(("rule", "params"), CASES)
def test_one_pair_pick_is_the_head_of_the_k_pair_ranking(rule: str, params: dict) -> None:
    for seed in SEEDS:
        inputs = batch(seed)
        extra = dict(params, **required_params(rule, inputs.shape[1]))
        one = select(rule, inputs, np.random.default_rng(seed), **extra)
        two = select(rule, inputs, np.random.default_rng(seed), pairs_per_prompt=2, **extra)
        head = first_per_prompt(two)
        for name in ("prompt_index", "first", "second", "score", "pseudo_label"):
            np.testing.assert_array_equal(getattr(one, name), getattr(head, name), err_msg=name)


@pytest.mark.parametrize("params", [{}, {"argmax_tol": 0.0}, {"beta": 0.0}, {"argmax_tol": 0.3}])
def test_maxmin_lcb_single_game_equals_the_general_game(params: dict) -> None:
    for seed in SEEDS:
        inputs = batch(seed)
        fast = select("maxmin_lcb", inputs, np.random.default_rng(seed), **params)
        general = select(  # every response is a candidate: the general loop, same game
            "maxmin_lcb",
            inputs,
            np.random.default_rng(seed),
            use_candidate_set=True,
            decision_buffer=1e300,
            **params,
        )
        for name in ("prompt_index", "first", "second", "score"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(general, name))


@pytest.mark.parametrize("seed", range(6))
def test_outer_difference_argmax_equals_the_masked_matrix_argmax(seed: int) -> None:
    g = np.random.default_rng(seed)
    scale = [1.0, 1e15, 1e300][seed % 3]
    a = np.round(g.normal(size=(200, 7)), seed % 2) * scale
    b = a - np.round(g.random((200, 7)), 1) * scale
    mask = g.random((200, 7)) < 0.7
    got = outer_difference_argmax(a, b, mask)
    want = masked_pair_argmax(a[:, :, None] - b[:, None, :], pair_validity(mask))
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_array_equal(got[0][got[2]], want[0][want[2]])
    np.testing.assert_array_equal(got[1][got[2]], want[1][want[2]])


def test_pair_ledger_answers_from_the_mask_until_a_pair_is_taken() -> None:
    g = np.random.default_rng(3)
    mask = g.random((40, 6)) < 0.6
    ledger = PairLedger(mask)
    rows = np.arange(40)
    for _ in range(3):
        open_pairs = ledger.open_pairs()
        np.testing.assert_array_equal(ledger.has_partner(), open_pairs.any(axis=2))
        first = g.integers(0, 6, size=40)
        np.testing.assert_array_equal(ledger.partners(first), open_pairs[rows, first])
        partner = np.argmax(open_pairs[rows, first], axis=1)
        active = open_pairs[rows, first, partner]
        ledger.add(active, first, partner)
    assert ledger.taken is not None and ledger.taken.any()


def eager_retry_partner(
    rng: np.random.Generator,
    mean: np.ndarray,
    std: np.ndarray,
    beta: float,
    mask: np.ndarray,
    partners: np.ndarray,
    tries: int,
    sign: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The retry loop as it was written before: every retry of every prompt drawn at once."""
    rows = np.arange(mean.shape[0])
    fallback, _ = uniform_choice(rng, partners)
    z = rng.uniform(-1.0, 1.0, size=(tries, *mean.shape))
    samples = sign * mean[None] + beta * z * std[None]
    winners = np.argmax(np.where(mask[None], samples, -np.inf), axis=-1)
    accepted = partners[rows[None, :], winners]
    any_ok = accepted.any(axis=0)
    return np.where(any_ok, winners[np.argmax(accepted, axis=0), rows], fallback), ~any_ok


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937])
@pytest.mark.parametrize(
    ("sign", "beta", "tries"), [(1.0, 1.0, 30), (-1.0, 1.0, 30), (1.0, 0.0, 5)]
)
def test_lazy_retries_equal_the_eager_draw_and_leave_the_same_generator_state(
    bit_generator: type[np.random.BitGenerator], sign: float, beta: float, tries: int
) -> None:
    for seed in range(4):
        inputs = batch(seed)
        mask = inputs.mask
        mean, std = np.where(mask, inputs.mean, 0.0), np.where(mask, inputs.std, 0.0)
        g = np.random.default_rng(seed)
        first = np.argmax(np.where(mask, g.random(mask.shape), -1.0), axis=1)
        partners = mask & (np.arange(mask.shape[1])[None, :] != first[:, None])
        partners[::7] = False  # prompts without a partner never accept
        lazy_rng = np.random.Generator(bit_generator(seed))
        eager_rng = np.random.Generator(bit_generator(seed))
        lazy_rng.random(3, dtype=np.float32)  # a buffered 32-bit half-word must survive too
        eager_rng.random(3, dtype=np.float32)
        got = retry_partner(lazy_rng, mean, std, beta, mask, partners, tries, sign)
        want = eager_retry_partner(eager_rng, mean, std, beta, mask, partners, tries, sign)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        for dtype in (np.float32, np.float64):  # the same generator state afterwards
            np.testing.assert_array_equal(lazy_rng.random(5, dtype), eager_rng.random(5, dtype))


@pytest.mark.parametrize("slots", [12, 20, 32])
@pytest.mark.parametrize("kind", ["normal", "ties", "equal_std", "huge"])
def test_infomax_pruned_search_equals_every_upper_pair(slots: int, kind: str) -> None:
    g = np.random.default_rng(slots)
    mean = g.normal(size=(300, slots))
    std = g.random((300, slots))
    if kind == "ties":
        mean, std = np.round(mean), np.round(std * 2) / 2
    elif kind == "equal_std":
        std = np.full_like(std, 0.7)
    elif kind == "huge":
        mean, std = mean * 1e15 + 1e16, std * 1e15
    mask = g.random((300, slots)) < 0.8
    mean, std = np.where(mask, mean, 0.0), np.where(mask, std, 0.0)
    for beta in (0.0, 1.0, 3.0):
        pruned, pruned_width = widest_interval_pair(mean, std, beta, mask)
        dense, dense_width = widest_upper_pair(mean + beta * std, mean - beta * std, mask)
        np.testing.assert_array_equal(pruned.prompt_index, dense.prompt_index)
        np.testing.assert_array_equal(pruned.first, dense.first)
        np.testing.assert_array_equal(pruned.second, dense.second)
        np.testing.assert_array_equal(pruned_width, dense_width)
