"""The fake OpenAI-compatible server of the live tests: the package's server plus test helpers.

The server itself is :class:`prefloop.llm.fake_server.FakeOpenAIServer` (``prefloop bench live``
uses the same one); this module adds reply functions the tests share and re-exports the names,
so a test writes ``from fake_openai import FakeOpenAIServer, Fault, scripted``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from typing import Any

from prefloop.llm.fake_server import (
    FakeOpenAIServer,
    FakeReply,
    Fault,
    FaultFunction,
    ReplyFunction,
    echo_reply,
)

__all__ = [
    "FakeOpenAIServer",
    "FakeReply",
    "Fault",
    "FaultFunction",
    "ReplyFunction",
    "echo_reply",
    "last_user_text",
    "scripted",
]


def last_user_text(body: dict[str, Any]) -> str:
    """The content of the last user message of a request body."""
    users = [m for m in body["messages"] if m.get("role") == "user"]
    return str(users[-1]["content"]) if users else ""


def scripted(replies: Iterable[str | FakeReply]) -> ReplyFunction:
    """A reply function that hands out ``replies`` in order, one per choice (then repeats)."""
    cycle = itertools.cycle(list(replies))
    lock = threading.Lock()

    def reply(body: dict[str, Any], index: int) -> str | FakeReply:
        with lock:
            return next(cycle)

    return reply


def faults_for_prompts(prompt_to_fault: dict[str, Fault]) -> FaultFunction:
    """Serve a fault to every request whose last user message is a key of ``prompt_to_fault``."""

    def fault_for(body: dict[str, Any], number: int) -> Fault | None:
        return prompt_to_fault.get(last_user_text(body))

    return fault_for
