"""What goes to an OpenAI-compatible chat endpoint and what comes back, as typed records.

A call returns either a :class:`ChatResult` (the choices with their text, finish reason and,
when asked, per-token log-probabilities with the top alternatives; token usage; wall seconds;
attempts) or a :class:`ChatFailure` (what kind of fault ended it, a one-line message, attempts).
Batch calls return one of the two per request, in order, and never raise: one bad request does
not lose the rest of a batch, and the caller records the failure instead of inventing a text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from prefloop.data.records import Message

FailureKind = Literal[
    "rate_limited",
    "server_error",
    "timeout",
    "connection",
    "malformed",
    "too_few_choices",
    "invalid_reply",
    "client_error",
    "api_key",
]
"""Why a request failed for good: HTTP 429; HTTP 5xx; an attempt ran past its timeout; the
connection failed or was closed; the body was not the expected JSON; fewer choices than asked;
the caller's reply check refused every reply; another HTTP 4xx (not retried); the key could not
be read (not retried)."""

RETRYABLE_KINDS: frozenset[str] = frozenset(get_args(FailureKind)) - {"client_error", "api_key"}
"""Faults a later attempt may not meet again."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions request.

    ``n`` choices are asked for; ``top_logprobs`` > 0 asks for per-token log-probabilities with
    that many alternatives per position (0 asks for none). ``seed`` makes servers that honour
    it (vLLM, TGI) sample reproducibly. ``extra`` is merged into the body last.
    """

    messages: tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    top_logprobs: int = 0
    stop: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self, model: str, endpoint_extra: dict[str, Any]) -> dict[str, Any]:
        """The JSON body for ``model``: OpenAI's fields, then the endpoint's, then own extras."""
        out: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "n": self.n,
            "stream": False,
        }
        if self.seed is not None:
            out["seed"] = self.seed
        if self.top_logprobs > 0:
            out["logprobs"] = True
            out["top_logprobs"] = self.top_logprobs
        if self.stop:
            out["stop"] = list(self.stop)
        out.update(endpoint_extra)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class TokenLogprob:
    """One generated position: its token, log-probability, and the top alternatives."""

    token: str
    logprob: float
    top_logprobs: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ChatChoice:
    """One generated reply. ``logprobs`` is None unless they were asked for and returned."""

    text: str
    finish_reason: str | None
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True)
class ChatResult:
    """A successful call: the choices in index order, token usage, wall seconds, attempts.

    Token counts are the server's ``usage``; None when the server reports none. ``seconds``
    runs from the first send (not from the wait for a turn under ``maxConcurrency``) to the
    accepted reply, pauses between attempts included.
    """

    choices: tuple[ChatChoice, ...]
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    attempts: int

    @property
    def ok(self) -> Literal[True]:
        """Always True: tells results from failures without isinstance."""
        return True


@dataclass(frozen=True)
class ChatFailure:
    """A call that failed for good, after ``attempts`` attempts over ``seconds``.

    ``status`` is the last HTTP status when there was one. ``message`` is one line that names
    the endpoint and the last fault, never the API key.
    """

    kind: FailureKind
    message: str
    attempts: int
    seconds: float = 0.0
    status: int | None = None

    @property
    def ok(self) -> Literal[False]:
        """Always False: tells failures from results without isinstance."""
        return False


ChatOutcome = ChatResult | ChatFailure
"""What one request of a batch ends as."""
