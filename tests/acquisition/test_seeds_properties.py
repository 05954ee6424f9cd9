"""Invariants of the seed rules (AE-DPO, US-DPO, AE-Borda, ADPO, BGPM, ActiveRLHF) on random
ragged batches: no self-pairs, no padded picks (checked by ``registry.select``), distinct pairs,
the budget respected, finite scores although padded slots hold NaN, same seed same output."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prefloop.acquisition import AcquisitionInput, Selection, get_rule, select

VARIANTS: dict[str, list[dict[str, object]]] = {
    "ae_dpo": [{}, {"max_pairs": 3, "max_pairs_per_prompt": 2}],
    "us_dpo": [{}, {"max_pairs": 2}],
    "ae_borda": [{}, {"max_pairs": 2, "beta": 0.1}],
    "adpo": [{}, {"pairing": "all"}, {"pseudo_labels": False, "gamma": 0.5}],
    "bgpm_mv": [
        {},
        {"selection": "top_k", "max_pairs": 4},
        {"selection": "cluster_diverse", "max_pairs": 5},
    ],
    "bgpm_bald": [
        {"n_samples": 4},
        {"selection": "cluster_diverse", "max_pairs": 4, "n_samples": 3},
    ],
    "bgpm_ucb": [{}, {"selection": "top_k"}],
    "activerlhf_duo": [{"n_init": 2}, {"max_pairs": 2, "consensual_filter": True, "n_init": 1}],
    "activerlhf_dpp": [{}, {"max_pairs": 3, "oversampling_factor": 2.0}],
}


def make_inputs(
    p: int, n: int, s: int, half_k: int, d: int, with_ref: bool, seed: int
) -> AcquisitionInput:
    g = np.random.default_rng(seed)
    mask = np.zeros((p, n), bool)
    for row in range(p):
        real = g.integers(2, n + 1)
        mask[row, g.permutation(n)[:real]] = True
    pad = ~mask
    samples = g.normal(size=(p, n, s)) * 2.0
    pref = g.normal(size=(p, n, 2 * half_k))
    pref /= np.linalg.norm(pref, axis=-1, keepdims=True)
    arrays = {
        "mean": samples.mean(axis=2),
        "std": samples.std(axis=2) + 0.1,
        "samples": samples,
        "features": g.normal(size=(p, n, d)),
        "pref_mean": pref,
        "pref_var": g.uniform(0.0, 0.5, (p, n, 2 * half_k)),
        "ref_logp": g.normal(size=(p, n)) if with_ref else None,
    }
    for arr in arrays.values():
        if arr is not None:
            arr[pad] = np.nan  # padding must never be read
    return AcquisitionInput(mask=mask, **arrays)


def as_tuple(sel: Selection) -> tuple[list[int], list[int], list[int], list[float], list[int]]:
    return (
        sel.prompt_index.tolist(),
        sel.first.tolist(),
        sel.second.tolist(),
        sel.score.tolist(),
        sel.pseudo_label.tolist(),
    )


@settings(max_examples=40, deadline=None)
@given(
    p=st.integers(1, 5),
    n=st.integers(2, 6),
    s=st.integers(1, 4),
    half_k=st.integers(1, 2),
    d=st.integers(1, 4),
    with_ref=st.booleans(),
    data_seed=st.integers(0, 2**16),
    rule_seed=st.integers(0, 2**16),
)
def test_seed_rules_keep_their_invariants(
    p: int, n: int, s: int, half_k: int, d: int, with_ref: bool, data_seed: int, rule_seed: int
) -> None:
    inputs = make_inputs(p, n, s, half_k, d, with_ref, data_seed)
    for name, variants in VARIANTS.items():
        assert get_rule(name).kind == "batch"
        for params in variants:
            sel = select(name, inputs, np.random.default_rng(rule_seed), **params)
            again = select(name, inputs, np.random.default_rng(rule_seed), **params)
            assert as_tuple(sel) == as_tuple(again), (name, params)
            keys = {
                (pi, min(a, b), max(a, b))
                for pi, a, b in zip(
                    sel.prompt_index.tolist(), sel.first.tolist(), sel.second.tolist(), strict=True
                )
            }
            assert len(keys) == sel.size, (name, params)
            assert np.all(np.isfinite(sel.score)), (name, params)
            if name != "adpo":
                budget = int(params.get("max_pairs") or p)  # type: ignore[call-overload]
                least = 0 if params.get("consensual_filter") else 1  # the filter may empty the pool
                assert least <= sel.size <= budget, (name, params)
            else:
                assert np.all(np.isin(sel.pseudo_label, [-1, 0, 1]))


def test_registry_metadata() -> None:
    for name in VARIANTS:
        info = get_rule(name)
        assert info.paper.startswith("https://")
        assert set(VARIANTS[name][-1]) <= set(info.parameters())
    assert get_rule("bgpm_mv").needs == frozenset({"pref"})
    assert get_rule("activerlhf_duo").needs == frozenset({"samples"})
    assert get_rule("ae_dpo").parameters() == {
        "kappa": 2.0,
        "max_pairs": None,
        "max_pairs_per_prompt": 1,
    }
