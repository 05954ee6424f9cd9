"""Pool scope's pure parts: every rule's prompt value, the top-prompt choice, diversity."""

from __future__ import annotations

import numpy as np
import pytest
from _inputs import make_inputs, random_inputs

from prefloop.acquisition import AcquisitionInput, Selection, get_rule, rule_names, select
from prefloop.acquisition.pool_scope import (
    keep_prompts,
    prompt_features,
    prompt_values,
    top_prompts,
)
from prefloop.acquisition.registry import POOL_VALUES


def test_every_rule_has_a_pool_value_or_is_refused() -> None:
    """Per-prompt rules are all listed; batch rules with max_pairs rank the pool themselves."""
    for name in rule_names():
        info = get_rule(name)
        if info.kind == "per_prompt":
            assert name in POOL_VALUES, name
        else:
            expected = "batch" if "max_pairs" in info.parameters() else None
            assert info.pool_value == expected, name
    assert get_rule("adpo").pool_value is None
    assert set(POOL_VALUES) <= set(rule_names())


def test_pair_score_value_is_the_best_pair_of_each_prompt() -> None:
    inputs = make_inputs([[0.0, 1.0, 2.0], [0.0, 0.5, 3.0], [1.0, 1.0, 1.0]])
    sel = Selection(
        np.array([0, 0, 1, 2]),
        np.array([0, 1, 2, 0]),
        np.array([1, 2, 0, 1]),
        np.array([0.2, 0.9, 0.4, np.nan]),
        np.zeros(4, np.int8),
    )
    values = prompt_values("pair_score", inputs, sel, np.random.default_rng(0))
    np.testing.assert_allclose(values, [0.9, 0.4, -np.inf])


def test_delta_ucb_value_is_its_optimistic_gap() -> None:
    inputs = make_inputs([[0.0, 1.0, 2.0], [0.0, 0.1, 0.2]], std=[[0.1] * 3, [1.0] * 3])
    sel = select("delta_ucb", inputs, np.random.default_rng(0))
    values = prompt_values("pair_score", inputs, sel, np.random.default_rng(0))
    # prompt 0: (2 + 0.1) - (0 - 0.1) = 2.2; prompt 1: (0.2 + 1) - (0 - 1) = 2.2 + 0.0
    np.testing.assert_allclose(values, [2.2, 2.2])


def test_duel_ambiguity_prefers_uncertain_close_pairs() -> None:
    inputs = make_inputs([[0.0, 1.0], [0.0, 0.1]], std=[[0.2, 0.2], [0.2, 0.2]])
    sel = Selection.per_prompt(np.array([1, 1]), np.array([0, 0]))
    values = prompt_values("duel_ambiguity", inputs, sel, np.random.default_rng(0), beta=2.0)
    np.testing.assert_allclose(values, [2 * 0.4 - 1.0, 2 * 0.4 - 0.1])


def test_thompson_gap_is_a_seeded_draw_within_the_bounds() -> None:
    inputs = make_inputs([[1.0, 0.0]] * 500, std=[[0.5, 0.5]] * 500)
    sel = Selection.per_prompt(np.zeros(500, np.int64), np.ones(500, np.int64))
    a = prompt_values("thompson_gap", inputs, sel, np.random.default_rng(3), beta=1.0)
    b = prompt_values("thompson_gap", inputs, sel, np.random.default_rng(3), beta=1.0)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0 - 1e-12 and a.max() <= 2.0 + 1e-12  # (1 +- 0.5) - (0 +- 0.5)
    assert a.std() > 0.1  # really sampled


def test_uniform_value_is_seeded() -> None:
    inputs = make_inputs([[0.0, 1.0]] * 10)
    sel = Selection.per_prompt(np.zeros(10, np.int64), np.ones(10, np.int64))
    a = prompt_values("uniform", inputs, sel, np.random.default_rng(1))
    b = prompt_values("uniform", inputs, sel, np.random.default_rng(1))
    c = prompt_values("uniform", inputs, sel, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_batch_kind_has_no_prompt_value() -> None:
    inputs = make_inputs([[0.0, 1.0]])
    sel = Selection.per_prompt(np.zeros(1, np.int64), np.ones(1, np.int64))
    with pytest.raises(ValueError, match="batch rule"):
        prompt_values("batch", inputs, sel, np.random.default_rng(0))


def test_top_prompts_highest_first_ties_to_lower_index_never_unpaired() -> None:
    values = np.array([0.5, 2.0, -np.inf, 2.0, 1.0])
    np.testing.assert_array_equal(top_prompts(values, 3), [1, 3, 4])
    np.testing.assert_array_equal(top_prompts(values, 10), [1, 3, 4, 0])
    assert top_prompts(np.full(3, -np.inf), 2).size == 0


def test_diversity_takes_one_prompt_per_cluster() -> None:
    """Two tight clusters; the four best prompts all sit in cluster A. Without diversity the
    top 2 are both from A; with it, the best of A and the best of B."""
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 0.01, size=(6, 4))
    b = rng.normal(5.0, 0.01, size=(6, 4))
    features = np.concatenate([a, b])
    values = np.array([9, 8, 7, 6, 1, 1, 3, 2, 1, 1, 1, 1], float)
    np.testing.assert_array_equal(top_prompts(values, 2), [0, 1])
    picked = top_prompts(values, 2, features=features.__getitem__, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(picked, [0, 6])
    again = top_prompts(values, 2, features=features.__getitem__, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(picked, again)


def test_diversity_clusters_only_the_prefilter() -> None:
    """Only the PREFILTER x n best prompts are clustered: a lone low-value prompt far away is
    never picked for its own cluster."""
    features = np.zeros((30, 2))
    features[29] = [100.0, 100.0]  # isolated, but the worst prompt
    values = np.arange(30, 0, -1, dtype=float)
    seen: list[np.ndarray] = []

    def feats(rows: np.ndarray) -> np.ndarray:
        seen.append(rows)
        return features[rows]

    picked = top_prompts(values, 2, features=feats, rng=np.random.default_rng(0))
    assert 29 not in picked.tolist()
    assert seen[0].size == 20  # PREFILTER (10) x 2


def test_diversity_fills_from_the_best_when_clusters_run_short() -> None:
    features = np.zeros((5, 3))  # one distinct point: k-means leaves clusters empty
    values = np.array([1.0, 5.0, 3.0, 4.0, 2.0])
    picked = top_prompts(values, 3, features=features.__getitem__, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(picked, [1, 3, 2])


def test_prompt_features_average_real_responses_only() -> None:
    feats = np.array([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(prompt_features(feats, mask), [[2.0, 1.0]])


def test_keep_prompts_orders_pairs_by_prompt_rank() -> None:
    sel = Selection.per_prompt(
        np.array([[0, 1], [1, 2], [2, 0]]), np.array([[1, 2], [0, 0], [1, 1]])
    )
    kept = keep_prompts(sel, np.array([2, 0]), pool_candidates=3)
    np.testing.assert_array_equal(kept.prompt_index, [2, 2, 0, 0])
    np.testing.assert_array_equal(kept.first, [2, 0, 0, 1])
    assert kept.info["pool_candidates"] == 3


@pytest.mark.parametrize("name", sorted(POOL_VALUES))
def test_every_per_prompt_rule_ranks_a_random_pool(name: str) -> None:
    """Each listed rule's selection gives a finite value to every prompt it paired."""
    base = random_inputs(np.random.default_rng(7), 40, 6)
    models = np.asarray([[f"m{j}" for j in range(6)]] * 40, dtype=object)
    inputs = AcquisitionInput(
        mean=base.mean,
        std=base.std,
        mask=base.mask,
        samples=base.samples,
        judge_scores=np.nan_to_num(base.mean),
        models=models,
    )
    params = {"model_ranking": [f"m{j}" for j in range(6)]} if name == "delta_qwen" else {}
    sel = select(name, inputs, np.random.default_rng(1), **params)
    kind = POOL_VALUES[name]
    values = prompt_values(kind, inputs, sel, np.random.default_rng(2))
    paired = np.unique(sel.prompt_index)
    assert np.all(np.isfinite(values[paired])), name
    picked = top_prompts(values, 8)
    assert len(set(picked.tolist())) == 8
    assert values[picked].min() >= np.delete(values, picked).max()
