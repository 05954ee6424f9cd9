"""Tiny random-weight causal LMs saved to disk (built by ``live.tiny_lm``), one torch thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from live.tiny_lm import one_torch_thread, save_tiny_pair


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two tiny GPT-2 models: ``plain`` (no chat template) and ``chat`` (with one)."""
    return save_tiny_pair(tmp_path_factory.mktemp("tiny-lms"))


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread() -> Iterator[None]:
    """Run the tiny models on one intra-op thread (restored afterwards)."""
    with one_torch_thread():
        yield
