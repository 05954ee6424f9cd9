"""Fixtures of the reward tests: synthetic BT data, the MiniLM embedder, real dev features."""

from __future__ import annotations

import pytest
from _reward_dev_data import DevFeatures, read_dev_texts
from _reward_synthetic import LinearBTData, make_linear_bt

from prefloop.reward.feature_cache import FeatureCache
from prefloop.reward.minilm_embedder import MiniLMEmbedder


@pytest.fixture(scope="session")
def linear_bt() -> LinearBTData:
    """600 BT-labelled pairs in a 16-d subspace of 32-d unit features, plus held-out data."""
    return make_linear_bt(seed=0)


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The real all-MiniLM-L6-v2 at 128 tokens (loaded once per session)."""
    return MiniLMEmbedder(max_length_tokens=128, batch_size=32)


@pytest.fixture(scope="session")
def dev_features(minilm: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory) -> DevFeatures:
    """MiniLM features and judge scores of the first 120 dev prompts (8 responses each)."""
    texts = read_dev_texts()
    cache = FeatureCache(tmp_path_factory.mktemp("dev_feature_cache"))
    flat = cache.get_or_compute(texts.prompts, texts.responses, minilm)
    num_prompts, num_responses = texts.scores.shape
    return DevFeatures(
        features=flat.reshape(num_prompts, num_responses, minilm.dim),
        scores=texts.scores,
        prompt_ids=texts.prompt_ids,
    )
