"""ADPO: the three margin regimes, the exact boundary, the counters and the w/o-PL ablation."""

from __future__ import annotations

import numpy as np
import pytest

from prefloop.acquisition.adpo import adpo, margin_decision
from prefloop.acquisition.base import AcquisitionError, AcquisitionInput


def two_response_batch(margins: list[float]) -> AcquisitionInput:
    """One pair per prompt with mean = [m, 0], so the (0, 1) margin is m."""
    mean = np.array([[m, 0.0] for m in margins])
    return AcquisitionInput(mean=mean, std=np.ones_like(mean), mask=np.ones(mean.shape, bool))


def test_three_regimes_and_counters() -> None:
    sel = adpo(two_response_batch([2.0, -2.0, 0.5, -0.5]), np.random.default_rng(0), pairing="all")
    assert sel.first.tolist() == [0, 0, 0, 0]
    assert sel.pseudo_label.tolist() == [1, -1, 0, 0]
    np.testing.assert_allclose(sel.score, [2.0, -2.0, 0.5, -0.5])
    assert sel.info["queries"] == 2
    assert sel.info["pseudo_labels"] == 2
    assert sel.info["pseudo_first"] == 1
    assert sel.info["pseudo_second"] == 1


def test_exact_boundaries_are_queries() -> None:
    gamma = 1.25  # exactly representable, so the margins hit the boundary exactly
    sel = adpo(
        two_response_batch([gamma, -gamma, np.nextafter(gamma, 2.0), np.nextafter(-gamma, -2.0)]),
        np.random.default_rng(0),
        gamma=gamma,
        pairing="all",
    )
    assert sel.pseudo_label.tolist() == [0, 0, 1, -1]
    assert margin_decision(np.array([-1.3]), 1.3).tolist() == [0]


def test_random_pairing_orients_the_label_by_the_margin() -> None:
    g = np.random.default_rng(4)
    mean = g.normal(scale=2.0, size=(40, 5))
    mask = np.ones((40, 5), bool)
    mask[::3, 3:] = False
    ref = g.normal(size=(40, 5))
    inputs = AcquisitionInput(mean=mean, std=np.ones_like(mean), mask=mask, ref_logp=ref)
    sel = adpo(inputs, np.random.default_rng(1))
    assert sel.prompt_index.tolist() == list(range(40))  # one pair per prompt
    r = mean - ref
    m = r[sel.prompt_index, sel.first] - r[sel.prompt_index, sel.second]
    np.testing.assert_allclose(sel.score, m)
    expected = np.where(np.abs(m) <= 1.3, 0, np.sign(m)).astype(int)
    assert sel.pseudo_label.tolist() == expected.tolist()
    assert np.all(mask[sel.prompt_index, sel.first] & mask[sel.prompt_index, sel.second])
    assert sel.info["queries"] + sel.info["pseudo_labels"] == 40
    again = adpo(inputs, np.random.default_rng(1))
    assert np.array_equal(sel.first, again.first) and np.array_equal(sel.second, again.second)


def test_random_pairing_draws_both_orientations_of_a_two_response_prompt() -> None:
    inputs = two_response_batch([0.0] * 200)
    sel = adpo(inputs, np.random.default_rng(2))
    assert 60 < int(np.sum(sel.first == 0)) < 140
    assert np.all(sel.first != sel.second)


def test_without_pseudo_labels_confident_pairs_are_dropped() -> None:
    sel = adpo(
        two_response_batch([2.0, -2.0, 0.5]),
        np.random.default_rng(0),
        pairing="all",
        pseudo_labels=False,
    )
    assert sel.prompt_index.tolist() == [2]
    assert sel.pseudo_label.tolist() == [0]
    assert sel.info["dropped_confident"] == 2
    assert sel.info["pseudo_labels"] == 0


def test_all_pairing_covers_every_pair_and_bad_parameters_raise() -> None:
    mean = np.arange(8, dtype=float).reshape(2, 4)
    inputs = AcquisitionInput(mean=mean, std=np.ones_like(mean), mask=np.ones((2, 4), bool))
    assert adpo(inputs, np.random.default_rng(0), pairing="all").size == 12
    with pytest.raises(AcquisitionError, match="gamma"):
        adpo(inputs, np.random.default_rng(0), gamma=-1.0)
    lonely = AcquisitionInput(
        mean=mean, std=np.ones_like(mean), mask=np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    )
    with pytest.raises(AcquisitionError, match=r"rows \[1\] have fewer than 2"):
        adpo(lonely, np.random.default_rng(0))
    with pytest.raises(AcquisitionError, match="pairing"):
        adpo(inputs, np.random.default_rng(0), pairing="best")
