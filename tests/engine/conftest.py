"""Engine tests share one feature cache so the real MiniLM embeds each text once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature-cache directory shared by every engine test of the session."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture
def small_overrides(feature_cache_dir: Path) -> list[str]:
    """A quickstart shrunk to 40 prompts, 64-token texts and 8-prompt rounds."""
    return [
        "spec.prompts.limit=40",
        "spec.evaluation.shadowRandom=false",
        "spec.batchSize=8",
        "spec.rewardModel.embedder.maxLengthTokens=64",
        f"spec.rewardModel.embedder.cacheDir={feature_cache_dir}",
        "spec.rewardModel.head.numHeads=8",
        "spec.trainer.epochsPerRound=5",
        "spec.budget.maxAnnotations=null",
    ]
