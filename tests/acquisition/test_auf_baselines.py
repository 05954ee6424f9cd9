"""Random, UltraFeedback best-of-4, MaxMin and DeltaQwen: the static baselines."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _inputs import make_inputs, model_names, random_inputs

from prefloop.acquisition import AcquisitionError, AcquisitionInput, select


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _same_scores(
    prompts: int, scores: list[float], mean: list[float] | None = None
) -> AcquisitionInput:
    n = len(scores)
    return make_inputs(
        [mean if mean is not None else [0.0] * n] * prompts,
        judge_scores=[scores] * prompts,
    )


# --- Random ---------------------------------------------------------------------------------


def test_random_is_uniform_over_distinct_pairs_and_orientations() -> None:
    inputs = make_inputs(np.zeros((6000, 4)))
    sel = select("random", inputs, _rng(0))
    assert np.all(sel.first != sel.second)
    pair_id = {pair: idx for idx, pair in enumerate(itertools.combinations(range(4), 2))}
    lo, hi = np.minimum(sel.first, sel.second), np.maximum(sel.first, sel.second)
    counts = np.bincount([pair_id[(a, b)] for a, b in zip(lo, hi, strict=True)], minlength=6)
    assert np.all(np.abs(counts - 1000) < 130)
    assert abs(np.mean(sel.first < sel.second) - 0.5) < 0.03


def test_random_single_pair_is_uniform_over_ordered_real_pairs_with_padding() -> None:
    mask = np.tile([True, False, True, True, False, True], (12_000, 1))
    inputs = make_inputs(np.zeros(mask.shape), mask=mask)
    sel = select("random", inputs, _rng(5))
    real = [0, 2, 3, 5]
    ordered = {pair: idx for idx, pair in enumerate(itertools.permutations(real, 2))}
    counts = np.bincount(
        [ordered[(a, b)] for a, b in zip(sel.first, sel.second, strict=True)], minlength=12
    )
    assert sel.size == 12_000 and np.all(np.abs(counts - 1000) < 130)


def test_random_k_equal_to_all_pairs_returns_every_pair() -> None:
    inputs = make_inputs(np.zeros((3, 4)))
    sel = select("random", inputs, _rng(1), pairs_per_prompt=10)
    assert sel.size == 3 * 6
    for p in range(3):
        rows = sel.prompt_index == p
        got = {frozenset(x) for x in zip(sel.first[rows], sel.second[rows], strict=True)}
        assert got == {frozenset(x) for x in itertools.combinations(range(4), 2)}


def test_random_respects_masks() -> None:
    mask = [[True, False, True, False, False], [False, True, True, True, False]]
    inputs = make_inputs(np.zeros((2, 5)), mask=mask)
    sel = select("random", inputs, _rng(2), pairs_per_prompt=3)
    np.testing.assert_array_equal(sel.prompt_index, [0, 1, 1, 1])
    assert {int(sel.first[0]), int(sel.second[0])} == {0, 2}


# --- UltraFeedback --------------------------------------------------------------------------


def test_ultrafeedback_with_four_responses_picks_the_judge_best_vs_a_uniform_other() -> None:
    inputs = _same_scores(3000, [0.2, 0.9, 0.5, 0.1], mean=[9.0, 0.0, 0.0, 0.0])
    sel = select("ultrafeedback", inputs, _rng(0))
    assert np.all(sel.first == 1)
    counts = np.bincount(sel.second, minlength=4)
    assert counts[1] == 0
    assert np.all(np.abs(counts[[0, 2, 3]] - 1000) < 120)
    np.testing.assert_allclose(sel.score, 0.9 - np.array([0.2, 0.9, 0.5, 0.1])[sel.second])
    assert np.all(sel.pseudo_label == 0)


def test_ultrafeedback_best_of_a_random_four_out_of_six() -> None:
    inputs = _same_scores(3000, [0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    sel = select("ultrafeedback", inputs, _rng(1))
    # the best of 4 drawn from 6 is never one of the bottom three; it is response 0 w.p. 4/6
    assert set(np.unique(sel.first)) <= {0, 1, 2}
    assert abs(np.mean(sel.first == 0) - 4 / 6) < 0.03
    assert np.all(sel.second > sel.first)


def test_ultrafeedback_with_fewer_than_four_uses_all() -> None:
    inputs = _same_scores(200, [0.1, 0.7, 0.3])
    sel = select("ultrafeedback", inputs, _rng(2))
    assert np.all(sel.first == 1)
    assert set(np.unique(sel.second)) == {0, 2}


def test_ultrafeedback_by_reward_ranks_by_the_model_mean() -> None:
    inputs = _same_scores(100, [0.9, 0.1, 0.5, 0.3], mean=[0.0, 5.0, 1.0, 2.0])
    sel = select("ultrafeedback", inputs, _rng(0), by="reward")
    assert np.all(sel.first == 1)
    judge = select("ultrafeedback", inputs, _rng(0), by="judge")
    assert np.all(judge.first == 0)


def test_ultrafeedback_multiple_pairs_exhaust_the_prompt_without_repeats() -> None:
    inputs = _same_scores(10, [0.4, 0.3, 0.2, 0.1, 0.0])
    sel = select("ultrafeedback", inputs, _rng(3), pairs_per_prompt=10)
    assert sel.size == 100
    for p in range(10):
        rows = sel.prompt_index == p
        assert (
            len({frozenset(x) for x in zip(sel.first[rows], sel.second[rows], strict=True)}) == 10
        )
    scores = np.array([0.4, 0.3, 0.2, 0.1, 0.0])
    assert np.all(scores[sel.first] > scores[sel.second])  # always oriented best-first


def test_judge_ranked_baselines_need_judge_scores() -> None:
    no_scores = make_inputs([[0.0, 1.0, 2.0]])
    for rule in ("ultrafeedback", "maxmin"):
        with pytest.raises(AcquisitionError, match="by='reward'"):
            select(rule, no_scores, _rng())
        assert select(rule, no_scores, _rng(), by="reward").first[0] == 2


def test_judge_ranked_baselines_reject_nan_scores_on_real_responses() -> None:
    inputs = make_inputs(
        [[0.0, 0.0, 0.0]] * 3, judge_scores=[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, np.nan, 3.0]]
    )
    for rule in ("ultrafeedback", "maxmin"):
        with pytest.raises(AcquisitionError, match=r"judge_scores.*prompt row \[2\]"):
            select(rule, inputs, _rng())


def test_unknown_by_is_rejected() -> None:
    inputs = make_inputs([[0.0, 1.0]], judge_scores=[[0.0, 1.0]])
    with pytest.raises(AcquisitionError, match="by"):
        select("maxmin", inputs, _rng(), by="oracle")


# --- MaxMin ---------------------------------------------------------------------------------


def test_maxmin_pairs_best_and_worst_by_judge_score() -> None:
    inputs = make_inputs(
        [[0.0, 9.0, 0.0, -9.0], [0.0, 0.0, 0.0, 0.0]],
        judge_scores=[[0.5, 0.1, 0.9, 0.3], [2.0, 4.0, 1.0, np.nan]],
        mask=[[True] * 4, [True, True, True, False]],
    )
    sel = select("maxmin", inputs, _rng())
    assert (sel.first[0], sel.second[0]) == (2, 1)
    assert (sel.first[1], sel.second[1]) == (1, 2)
    np.testing.assert_allclose(sel.score, [0.8, 3.0])
    by_reward = select("maxmin", inputs, _rng(), by="reward")
    assert (by_reward.first[0], by_reward.second[0]) == (1, 3)


def test_maxmin_k_pairs_follow_the_score_gaps() -> None:
    inputs = _same_scores(1, [0.0, 1.0, 3.0, 10.0])
    sel = select("maxmin", inputs, _rng(), pairs_per_prompt=3)
    got = list(zip(sel.first.tolist(), sel.second.tolist(), strict=True))
    assert got == [(3, 0), (3, 1), (3, 2)]
    np.testing.assert_allclose(sel.score, [10.0, 9.0, 7.0])


# --- DeltaQwen ------------------------------------------------------------------------------

RANKING = ("Qwen3-235B", "Qwen3-32B", "Qwen3-1.7B", "Qwen3-0.6B")


def test_delta_qwen_pairs_strongest_with_weakest_and_labels_by_identity() -> None:
    inputs = make_inputs(
        np.zeros((3, 4)),
        mask=[[True] * 4, [True, True, True, False], [True, True, True, True]],
        models=[
            ["Qwen3-1.7B", "Qwen3-235B", "gemma-3-1b", "Qwen3-0.6B"],
            ["Qwen3-0.6B", "Qwen3-32B", "Qwen3-1.7B", ""],
            ["Qwen3-32B", "phi-4", "Qwen3-32B", "Qwen3-1.7B"],
        ],
    )
    sel = select("delta_qwen", inputs, _rng(), model_ranking=RANKING)
    got = list(zip(sel.first.tolist(), sel.second.tolist(), strict=True))
    assert got == [(1, 3), (1, 0), (0, 3)]
    assert np.all(sel.pseudo_label == 1)
    np.testing.assert_allclose(sel.score, [3.0, 2.0, 1.0])


def test_delta_qwen_multiple_pairs_keep_the_stronger_model_first() -> None:
    models = [list(model_names(5))] * 2
    inputs = make_inputs(np.zeros((2, 5)), models=models)
    sel = select("delta_qwen", inputs, _rng(), model_ranking=model_names(5), pairs_per_prompt=4)
    assert sel.size == 8
    assert np.all(sel.first < sel.second)  # m0 is strongest, names follow the slot index
    got = list(zip(sel.first[:4].tolist(), sel.second[:4].tolist(), strict=True))
    assert got == [(0, 4), (0, 3), (1, 4), (0, 2)]


def test_delta_qwen_accepts_a_list_ranking_from_yaml() -> None:
    inputs = make_inputs(np.zeros((1, 2)), models=[["b", "a"]])
    sel = select("delta_qwen", inputs, _rng(), model_ranking=["a", "b"])
    assert (sel.first[0], sel.second[0]) == (1, 0)


def test_delta_qwen_empty_ranking_is_a_clear_error() -> None:
    inputs = make_inputs(np.zeros((1, 2)), models=[["a", "b"]])
    with pytest.raises(AcquisitionError, match="model_ranking is empty"):
        select("delta_qwen", inputs, _rng())


def test_delta_qwen_names_the_prompt_row_and_missing_models() -> None:
    inputs = make_inputs(
        np.zeros((3, 3)),
        models=[
            ["Qwen3-32B", "Qwen3-0.6B", "x"],
            ["Qwen3-32B", "Llama-3.1-8B", "gemma-3-1b"],
            ["Qwen3-32B", "Qwen3-32B", "Qwen3-0.6B"],
        ],
    )
    with pytest.raises(AcquisitionError) as err:
        select("delta_qwen", inputs, _rng(), model_ranking=("Qwen3-32B", "Qwen3-0.6B"))
    message = str(err.value)
    assert "prompt row [1]" in message
    assert "Llama-3.1-8B" in message and "gemma-3-1b" in message
    assert "row 0" not in message and "row 2" not in message


def test_delta_qwen_needs_model_names_and_a_sane_ranking() -> None:
    without_models = make_inputs(np.zeros((1, 2)))
    with pytest.raises(AcquisitionError, match="needs models"):
        select("delta_qwen", without_models, _rng(), model_ranking=("a", "b"))
    inputs = make_inputs(np.zeros((1, 2)), models=[["a", "b"]])
    with pytest.raises(AcquisitionError, match="more than once"):
        select("delta_qwen", inputs, _rng(), model_ranking=("a", "b", "a"))
    with pytest.raises(AcquisitionError, match="not a string"):
        select("delta_qwen", inputs, _rng(), model_ranking="ab")


def test_delta_qwen_on_random_batches_always_picks_the_extreme_ranks() -> None:
    inputs = random_inputs(_rng(4), 50, 7)
    sel = select("delta_qwen", inputs, _rng(), model_ranking=model_names(7))
    real = inputs.mask
    strongest = np.argmax(real, axis=1)
    weakest = real.shape[1] - 1 - np.argmax(real[:, ::-1], axis=1)
    np.testing.assert_array_equal(sel.first, strongest)
    np.testing.assert_array_equal(sel.second, weakest)
