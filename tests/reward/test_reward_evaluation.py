"""Held-out pairwise accuracy and per-prompt Spearman, against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from prefloop.reward.base import RewardPrediction
from prefloop.reward.evaluation import (
    EvaluationInputError,
    pairwise_accuracy,
    per_prompt_spearman,
)


class FirstFeatureHead:
    """A head whose reward is ``sign * features[:, 0]`` (a known, controllable predictor)."""

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign

    def predict(self, features: np.ndarray) -> RewardPrediction:
        mean = self.sign * features[:, 0].astype(np.float64)
        return RewardPrediction(mean, np.zeros_like(mean), np.stack([mean, mean], axis=1))

    def pairwise_logit(self, features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
        return self.predict(features_a).mean - self.predict(features_b).mean


def _setup(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.random((6, 5))
    feats = np.concatenate([scores[..., None], rng.normal(size=(6, 5, 3))], axis=-1)
    mask = np.ones((6, 5), dtype=bool)
    return feats, scores, mask


def test_a_perfect_predictor_scores_one_and_a_reversed_one_zero() -> None:
    feats, scores, mask = _setup()
    good = pairwise_accuracy(FirstFeatureHead(1.0), feats, scores, mask)
    bad = pairwise_accuracy(FirstFeatureHead(-1.0), feats, scores, mask)
    assert good["accuracy"] == 1.0 and bad["accuracy"] == 0.0
    assert good["num_pairs"] == 6 * 10
    assert good["spearman"] == pytest.approx(1.0) and bad["spearman"] == pytest.approx(-1.0)
    assert good["num_prompts_spearman"] == 6


def test_ties_padding_and_unknown_scores_are_left_out() -> None:
    feats, scores, mask = _setup()
    scores[0, 1] = scores[0, 0]  # a tie: 1 pair fewer
    mask[1, 4] = False  # padding: 4 pairs fewer
    scores[2, 3] = np.nan  # unknown score: 4 pairs fewer
    result = pairwise_accuracy(FirstFeatureHead(), feats, scores, mask)
    assert result["num_pairs"] == 60 - 1 - 4 - 4
    assert result["accuracy"] == 1.0


def test_accuracy_matches_a_brute_force_count_and_zero_logits_count_half() -> None:
    rng = np.random.default_rng(1)
    feats = np.round(rng.normal(size=(4, 6, 2)), 1)  # rounding creates predicted ties
    scores = rng.random((4, 6))
    mask = rng.random((4, 6)) > 0.2
    hits, total = 0.0, 0
    for p in range(4):
        for i in range(6):
            for j in range(i + 1, 6):
                if not (mask[p, i] and mask[p, j]) or scores[p, i] == scores[p, j]:
                    continue
                logit = feats[p, i, 0] - feats[p, j, 0]
                truth = np.sign(scores[p, i] - scores[p, j])
                hits += 0.5 if logit == 0 else float(np.sign(logit) == truth)
                total += 1
    result = pairwise_accuracy(FirstFeatureHead(), feats, scores, mask)
    assert result["num_pairs"] == total
    assert result["accuracy"] == pytest.approx(hits / total)


def test_spearman_matches_scipy_per_prompt() -> None:
    rng = np.random.default_rng(2)
    pred = rng.normal(size=(8, 7))
    scores = rng.random((8, 7))
    scores[0, :3] = 0.5  # ties inside a prompt
    mask = rng.random((8, 7)) > 0.25
    mask[3] = False
    mask[3, 0] = True  # a single response: undefined
    scores[4] = 1.0  # constant scores: undefined
    rho = per_prompt_spearman(pred, scores, mask)
    for p in range(8):
        m = mask[p]
        if p in (3, 4):
            assert np.isnan(rho[p])
            continue
        expected = spearmanr(pred[p, m], scores[p, m]).statistic
        assert rho[p] == pytest.approx(expected)


def test_no_comparable_pairs_gives_nan_accuracy() -> None:
    feats, scores, mask = _setup()
    scores[:] = 0.3
    result = pairwise_accuracy(FirstFeatureHead(), feats, scores, mask)
    assert result["num_pairs"] == 0 and np.isnan(result["accuracy"])
    assert np.isnan(result["spearman"]) and result["num_prompts_spearman"] == 0


def test_shape_mismatches_are_reported() -> None:
    feats, scores, mask = _setup()
    with pytest.raises(EvaluationInputError, match=r"\(P, N, D\)"):
        pairwise_accuracy(FirstFeatureHead(), feats[0], scores, mask)
    with pytest.raises(EvaluationInputError, match="must both match"):
        pairwise_accuracy(FirstFeatureHead(), feats, scores[:, :4], mask)


def test_chunked_scoring_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefloop.reward.evaluation as evaluation

    feats, scores, mask = _setup(seed=4)
    whole = pairwise_accuracy(FirstFeatureHead(), feats + 0.1 * feats[..., ::-1], scores, mask)
    monkeypatch.setattr(evaluation, "PAIR_CHUNK", 7)
    chunked = pairwise_accuracy(FirstFeatureHead(), feats + 0.1 * feats[..., ::-1], scores, mask)
    assert chunked == whole
    assert 0.0 < whole["accuracy"] < 1.0
