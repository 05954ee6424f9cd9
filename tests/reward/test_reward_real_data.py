"""Real data: MiniLM features of AlpacaEval dev prompts; every head must rank held-out responses.

80 prompts train (every response pair whose judge scores differ, higher score chosen), 40 other
prompts evaluate. Chance is 0.5; with these settings the heads reach 0.66-0.70 (ensemble about
0.70, epinet 0.68, BGPM 0.66-0.68 over seeds), so 0.6 leaves a margin while still failing for a
head that does not learn.
"""

from __future__ import annotations

import numpy as np
import pytest
from _reward_dev_data import DevFeatures

from prefloop.reward import make_head
from prefloop.reward.evaluation import pairwise_accuracy
from prefloop.trainer import AnchorSchedule, ReplayBuffer, RewardModelTrainer

TRAIN_PROMPTS = 80


def _judged_pairs(dev: DevFeatures, prompts: range) -> tuple[np.ndarray, np.ndarray, list[str]]:
    chosen, rejected, ids = [], [], []
    n = dev.scores.shape[1]
    ii, jj = np.triu_indices(n, k=1)
    for p in prompts:
        for i, j in zip(ii, jj, strict=True):
            si, sj = dev.scores[p, i], dev.scores[p, j]
            if si == sj:
                continue
            win, lose = (i, j) if si > sj else (j, i)
            chosen.append(dev.features[p, win])
            rejected.append(dev.features[p, lose])
            ids.append(f"{dev.prompt_ids[p]}:{win}>{lose}")
    return np.asarray(chosen), np.asarray(rejected), ids


@pytest.mark.model
@pytest.mark.parametrize("kind", ["ensemble", "epinet", "bgpm"])
def test_heads_rank_held_out_alpacaeval_responses(kind: str, dev_features: DevFeatures) -> None:
    assert dev_features.features.shape == (120, 8, 384)
    chosen, rejected, ids = _judged_pairs(dev_features, range(TRAIN_PROMPTS))
    assert len(ids) > 2000
    head = make_head(kind, 384, seed=0)  # type: ignore[arg-type]
    trainer = RewardModelTrainer(
        head, ReplayBuffer(capacity=10_000), AnchorSchedule(), passes_per_round=2
    )
    held_out = slice(TRAIN_PROMPTS, None)
    mask = np.ones(dev_features.scores[held_out].shape, dtype=bool)
    before = pairwise_accuracy(
        head, dev_features.features[held_out], dev_features.scores[held_out], mask
    )
    metrics = trainer.train_round(chosen, rejected, ids, n_done=80, n_total=120, seed=0)
    after = pairwise_accuracy(
        head, dev_features.features[held_out], dev_features.scores[held_out], mask
    )
    assert metrics["steps"] == 70  # ceil(2 passes x ~2235 pairs / 64)
    assert after["num_pairs"] > 1000
    assert after["accuracy"] > 0.6
    assert after["accuracy"] > before["accuracy"] + 0.05
    assert after["spearman"] > 0.3
