"""Human-judge tests share one feature cache so MiniLM embeds each text once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def human_feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature-cache directory shared by the human-judge tests."""
    return tmp_path_factory.mktemp("human-features")


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    """Two annotators, alice (a lead) and bob."""
    path = tmp_path / "tokens.yaml"
    path.write_text("alice: alice-secret-token\nbob: bob-secret-token\n")
    return path
