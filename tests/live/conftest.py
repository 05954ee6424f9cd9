"""Fixtures of the live tests: a real fake OpenAI-compatible server on loopback, tiny LMs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fake_openai import FakeOpenAIServer
from tiny_lm import one_torch_thread, save_tiny_pair


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A started server with the echo reply; tests set ``reply`` / ``fault_for`` / inject faults."""
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_openai_factory() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """Start servers with chosen arguments (all stopped at the end of the test)."""
    started: list[FakeOpenAIServer] = []

    def make(**kwargs: Any) -> FakeOpenAIServer:
        server = FakeOpenAIServer(**kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two tiny GPT-2 models: ``plain`` (no chat template) and ``chat`` (with one)."""
    return save_tiny_pair(tmp_path_factory.mktemp("live-tiny-lms"))


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread() -> Iterator[None]:
    """Run the tiny models on one intra-op thread (restored afterwards)."""
    with one_torch_thread():
        yield
