"""Invariants every ActiveUltraFeedback rule keeps, on random ragged batches (hypothesis).

For all rules: no self-pairs, no padded responses, ``min(k, n_p(n_p-1)/2)`` distinct unordered
pairs per prompt, the same seed gives the same selection, values in padded slots are ignored,
and a 10,000-prompt batch runs (proof of vectorisation; no timing assertion).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from _inputs import AUF_RULES, random_inputs, required_params
from hypothesis import given, settings
from hypothesis import strategies as st

from prefloop.acquisition import AcquisitionInput, Selection, get_rule, select

EXTRA_VARIANTS: dict[str, list[dict[str, object]]] = {
    "maxmin_lcb": [{}, {"use_candidate_set": True}, {"use_candidate_set": True, "beta": 0.0}],
    "delta_quantile": [{}, {"quantile": 0.5, "epsilon": 0.2}, {"quantile": 1.0}],
    "ultrafeedback": [{}, {"by": "reward"}, {"subset_size": 2}],
    "maxmin": [{}, {"by": "reward"}],
    "dts": [{}, {"max_iterations": 0}],
    "drts": [{}, {"beta": 0.0}],
}


def _pair_set(sel: Selection) -> set[tuple[int, int, int]]:
    lo = np.minimum(sel.first, sel.second)
    hi = np.maximum(sel.first, sel.second)
    return {(int(p), int(a), int(b)) for p, a, b in zip(sel.prompt_index, lo, hi, strict=True)}


def _same(a: Selection, b: Selection) -> bool:
    return (
        np.array_equal(a.prompt_index, b.prompt_index)
        and np.array_equal(a.first, b.first)
        and np.array_equal(a.second, b.second)
        and np.array_equal(a.score, b.score, equal_nan=True)
        and np.array_equal(a.pseudo_label, b.pseudo_label)
    )


def test_every_auf_rule_is_registered_per_prompt() -> None:
    for rule in AUF_RULES:
        info = get_rule(rule)
        assert info.kind == "per_prompt"
        assert info.paper.startswith("https://arxiv.org/abs/")
        assert info.parameters()["pairs_per_prompt"] == 1


@settings(max_examples=30, deadline=None)
@given(
    rule=st.sampled_from(AUF_RULES),
    variant=st.integers(0, 2),
    seed=st.integers(0, 2**32 - 1),
    prompts=st.integers(1, 6),
    slots=st.integers(2, 7),
    k=st.integers(1, 4),
    ties=st.booleans(),
)
def test_invariants_on_random_ragged_batches(
    rule: str, variant: int, seed: int, prompts: int, slots: int, k: int, ties: bool
) -> None:
    data_rng = np.random.default_rng(seed)
    inputs = random_inputs(data_rng, prompts, slots, ties=ties)
    variants = EXTRA_VARIANTS.get(rule, [{}])
    params = {**required_params(rule, slots), **variants[variant % len(variants)]}

    sel = select(rule, inputs, np.random.default_rng(seed), pairs_per_prompt=k, **params)

    assert np.all(sel.first != sel.second)
    assert np.all(inputs.mask[sel.prompt_index, sel.first])
    assert np.all(inputs.mask[sel.prompt_index, sel.second])
    n_real = inputs.mask.sum(axis=1)
    expected = np.minimum(k, n_real * (n_real - 1) // 2)
    np.testing.assert_array_equal(np.bincount(sel.prompt_index, minlength=prompts), expected)
    assert np.all(np.diff(sel.prompt_index) >= 0), "pairs must be grouped by prompt"
    assert len(_pair_set(sel)) == sel.size, "pairs within a prompt must be distinct"
    assert set(np.unique(sel.pseudo_label)) <= ({1} if rule == "delta_qwen" else {0})

    again = select(rule, inputs, np.random.default_rng(seed), pairs_per_prompt=k, **params)
    assert _same(sel, again)


def _with_padding_values(inputs: AcquisitionInput, value: float) -> AcquisitionInput:
    pad = ~inputs.mask
    mean, std = inputs.mean.copy(), inputs.std.copy()
    judge = np.asarray(inputs.judge_scores).copy()
    mean[pad], std[pad], judge[pad] = value, abs(value), value
    models = np.asarray(inputs.models).copy()
    models[pad] = "m0"  # the strongest model name, on a padded slot
    return replace(inputs, mean=mean, std=std, judge_scores=judge, models=models)


@settings(max_examples=30, deadline=None)
@given(
    rule=st.sampled_from(AUF_RULES),
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 3),
)
def test_padded_slot_values_never_matter(rule: str, seed: int, k: int) -> None:
    inputs = random_inputs(np.random.default_rng(seed), 5, 6)
    params = {**required_params(rule, 6), "pairs_per_prompt": k}
    inputs = _with_padding_values(inputs, 0.0)
    baseline = select(rule, inputs, np.random.default_rng(seed), **params)
    for value in (1e6, -1e6):
        other = select(
            rule, _with_padding_values(inputs, value), np.random.default_rng(seed), **params
        )
        assert _same(baseline, other)


@pytest.mark.parametrize("rule", AUF_RULES)
def test_two_response_prompts_pair_the_two(rule: str) -> None:
    inputs = random_inputs(np.random.default_rng(3), 8, 2, ragged=False)
    params = required_params(rule, 2)
    sel = select(rule, inputs, np.random.default_rng(0), pairs_per_prompt=3, **params)
    np.testing.assert_array_equal(sel.prompt_index, np.arange(8))
    assert {frozenset(p) for p in zip(sel.first, sel.second, strict=True)} == {frozenset((0, 1))}


@pytest.mark.parametrize("rule", AUF_RULES)
def test_ten_thousand_prompts_by_sixteen_responses(rule: str) -> None:
    prompts, slots = 10_000, 16
    inputs = random_inputs(np.random.default_rng(11), prompts, slots, ragged=False)
    params = required_params(rule, slots)
    for k in (1, 2):
        sel = select(rule, inputs, np.random.default_rng(5), pairs_per_prompt=k, **params)
        assert sel.size == prompts * k
        np.testing.assert_array_equal(sel.prompt_index, np.repeat(np.arange(prompts), k))
        assert sel.first.shape == sel.second.shape == sel.score.shape == (prompts * k,)
        assert np.all(sel.first != sel.second)


@pytest.mark.parametrize("rule", AUF_RULES)
@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_pairs_per_prompt_is_rejected(rule: str, bad: object) -> None:
    from prefloop.acquisition import AcquisitionError

    inputs = random_inputs(np.random.default_rng(0), 2, 3)
    with pytest.raises(AcquisitionError, match="pairs_per_prompt"):
        select(
            rule, inputs, np.random.default_rng(0), pairs_per_prompt=bad, **required_params(rule, 3)
        )
