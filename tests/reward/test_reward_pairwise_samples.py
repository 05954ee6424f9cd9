"""Posterior draws of the pairwise logit, the input of the calibration bench's predictive NLL."""

from __future__ import annotations

import numpy as np
import pytest

from prefloop.reward.heads import make_head


@pytest.mark.parametrize("kind", ["ensemble", "epinet"])
def test_scalar_heads_draw_paired_differences_whose_mean_is_the_logit(kind: str) -> None:
    rng = np.random.default_rng(0)
    head = make_head(kind, 16, seed=3)
    head.train_steps(
        rng.normal(size=(64, 16)), rng.normal(size=(64, 16)),
        max_steps=5, batch_size=16, anchor_weight=1.0, generator_seed=1,
    )  # fmt: skip
    a, b = rng.normal(size=(10, 16)), rng.normal(size=(10, 16))
    draws = head.pairwise_logit_samples(a, b)
    assert draws.shape == (10, head.predict(a).samples.shape[1])
    assert np.allclose(draws.mean(axis=1), head.pairwise_logit(a, b), atol=1e-5)
    assert np.allclose(head.pairwise_logit_samples(a, a), 0.0)
    assert draws.std(axis=1).min() > 0


def test_bgpm_draws_score_one_embedding_draw_against_the_other() -> None:
    rng = np.random.default_rng(1)
    head = make_head("bgpm", 16, seed=3, init_logvar=-1.0)
    a, b = rng.normal(size=(12, 16)), rng.normal(size=(12, 16))
    draws = head.pairwise_logit_samples(a, b)
    assert draws.shape == (12, 32)
    assert np.allclose(head.pairwise_logit_samples(a, a), 0.0, atol=1e-5)
    assert np.allclose(head.pairwise_logit_samples(b, a), -draws, atol=1e-5)  # skew-symmetric
    assert draws.std(axis=1).min() > 0  # a real posterior spread, not the mean repeated
    corr = np.corrcoef(draws.mean(axis=1), head.pairwise_logit(a, b))[0, 1]
    assert corr > 0.8
    with pytest.raises(ValueError, match="rows"):
        head.pairwise_logit_samples(a, b[:5])
