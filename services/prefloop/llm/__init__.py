"""Calling LLMs over HTTP: an OpenAI-compatible chat client, its config and a fake server.

- :class:`~prefloop.llm.config.HttpEndpointConfig`: where an endpoint is, its limits, and where
  its API key is (an environment variable or a mounted Secret file; read at call time);
- :class:`~prefloop.llm.openai_http.OpenAIChatClient`: batches of chat completions with a
  concurrency limit, timeouts and bounded retries (full jitter, ``Retry-After``); one typed
  :class:`~prefloop.llm.types.ChatResult` or :class:`~prefloop.llm.types.ChatFailure` per
  request, never an exception out of a batch;
- :class:`~prefloop.llm.fake_server.FakeOpenAIServer`: a real loopback server with scripted
  replies and injected faults, for tests and ``prefloop bench live``.

Both live generation (``responses.models[].backend: openai``) and the LLM judges use them.
The client (and aiohttp) is imported on first use, so that the spec, which embeds the config,
loads without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from prefloop.llm.config import ApiKeyError, HttpEndpointConfig
from prefloop.llm.types import (
    ChatChoice,
    ChatFailure,
    ChatOutcome,
    ChatRequest,
    ChatResult,
    FailureKind,
    TokenLogprob,
)

__all__ = [
    "ApiKeyError",
    "ChatChoice",
    "ChatFailure",
    "ChatOutcome",
    "ChatRequest",
    "ChatResult",
    "FailureKind",
    "HttpEndpointConfig",
    "OpenAIChatClient",
    "ReplyCheck",
    "TokenLogprob",
    "parse_chat_response",
]

if TYPE_CHECKING:
    from prefloop.llm.openai_http import OpenAIChatClient, ReplyCheck, parse_chat_response

_LAZY = {"OpenAIChatClient", "ReplyCheck", "parse_chat_response"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("prefloop.llm.openai_http"), name)
    raise AttributeError(f"module 'prefloop.llm' has no attribute {name!r}")
