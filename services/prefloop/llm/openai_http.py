"""An OpenAI-compatible chat-completions client that never loses a batch to one bad request.

Live generation and LLM judges call servers that rate-limit (HTTP 429), fail (5xx), hang, drop
connections and now and then return a body that is not what was asked for. Every request of a
batch is therefore retried on its own, within a bounded budget (``max_attempts`` attempts and
``retry_budget_seconds`` in total), after a pause drawn uniformly below a cap that doubles per
attempt ("full jitter", so many clients do not retry in lock-step; Brooker 2015,
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), and never shorter than
the server's ``Retry-After`` / ``retry-after-ms``. Retried faults: 429, 5xx, 408, connection
errors, attempts past ``timeout_seconds``, bodies that are not chat-completions JSON, fewer
choices than asked, and replies the caller's ``check`` refuses (e.g. a judge reply with no
rating). Other 4xx and an unreadable API key end the request at once.

A batch returns one :class:`~prefloop.llm.types.ChatResult` or
:class:`~prefloop.llm.types.ChatFailure` per request, in order; it never raises. At most
``max_concurrency`` requests are in flight: that many workers take the batch's requests in
order, each running its request's attempts and pauses to the end (so when a server asks for
backoff the batch slows down with it, and a batch of 60,000 prompts holds 64 coroutines, not
60,000). :meth:`OpenAIChatClient.complete_batch` is the synchronous facade the engine calls;
async callers use :meth:`OpenAIChatClient.complete_many`.

The API key is read at call time (:meth:`HttpEndpointConfig.read_api_key`), travels only in
the Authorization header, and is masked out of every message this module writes or logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from prefloop.llm.config import ApiKeyError, HttpEndpointConfig
from prefloop.llm.types import (
    RETRYABLE_KINDS,
    ChatChoice,
    ChatFailure,
    ChatOutcome,
    ChatRequest,
    ChatResult,
    FailureKind,
    TokenLogprob,
)

log = logging.getLogger("prefloop.llm")

ReplyCheck = Callable[[ChatResult], str | None]
"""Looks at a parsed reply; returns None to accept it or a reason to retry (``invalid_reply``)."""
Sleep = Callable[[float], Awaitable[None]]
DETAIL_CHARS = 200
"""How much of an error body goes into a failure message."""


class MalformedReply(ValueError):
    """The body is not chat-completions JSON of the expected shape."""


class TooFewChoices(ValueError):
    """The body has fewer choices than the request asked for."""


@dataclass(frozen=True)
class _Fault:
    kind: FailureKind
    message: str
    status: int | None = None
    retry_after_seconds: float | None = None


def full_jitter_pause(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """The pause after failed attempt ``attempt`` (1-based): uniform below its cap,
    ``min(cap, initial * 2 ** (attempt - 1))``.

    Why: exponential caps back off from a struggling server; drawing the whole pause at random
    spreads many clients' retries instead of synchronising them.
    """
    return rng.uniform(0.0, min(cap, initial * 2.0 ** (attempt - 1)))


def retry_after_seconds(headers: Any) -> float | None:
    """The server's requested wait: ``retry-after-ms`` (OpenAI), else ``Retry-After`` as seconds
    or an HTTP date; None when absent or unreadable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return value if math.isfinite(value) and value >= 0 else None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise MalformedReply(f"{where} is not a number: {value!r:.40}")
    return float(value)


def _parse_logprobs(raw: Any, where: str) -> tuple[TokenLogprob, ...] | None:
    if raw is None:
        return None
    content = raw.get("content") if isinstance(raw, dict) else None
    if content is None:
        return None
    if not isinstance(content, list):
        raise MalformedReply(f"{where}.logprobs.content is not a list")
    out: list[TokenLogprob] = []
    for i, pos in enumerate(content):
        at = f"{where}.logprobs.content[{i}]"
        if not isinstance(pos, dict) or not isinstance(pos.get("token"), str):
            raise MalformedReply(f"{at} has no token")
        tops = pos.get("top_logprobs") or []
        if not isinstance(tops, list):
            raise MalformedReply(f"{at}.top_logprobs is not a list")
        top: list[tuple[str, float]] = []
        for j, alt in enumerate(tops):
            if not isinstance(alt, dict) or not isinstance(alt.get("token"), str):
                raise MalformedReply(f"{at}.top_logprobs[{j}] has no token")
            top.append((alt["token"], _number(alt.get("logprob"), f"{at}.top_logprobs[{j}]")))
        out.append(TokenLogprob(pos["token"], _number(pos.get("logprob"), at), tuple(top)))
    return tuple(out)


def _count(usage: Any, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_chat_response(
    payload: Any, n: int
) -> tuple[tuple[ChatChoice, ...], int | None, int | None]:
    """Choices (in index order), prompt tokens and completion tokens of a chat-completions body.

    Why a strict parser: a body of the wrong shape must become a retried fault, not a KeyError
    deep in a judge, and not a half-read reply.

    Raises:
        MalformedReply: not an object with a list of choices with string message contents, or
            logprobs of the wrong types.
        TooFewChoices: fewer than ``n`` choices.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
        raise MalformedReply("the body has no list of choices")
    raw_choices = payload["choices"]
    indexed: list[tuple[int, ChatChoice]] = []
    for pos, raw in enumerate(raw_choices):
        where = f"choices[{pos}]"
        if not isinstance(raw, dict):
            raise MalformedReply(f"{where} is not an object")
        message = raw.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise MalformedReply(f"{where}.message.content is not a string")
        index = raw.get("index", pos)
        finish = raw.get("finish_reason")
        choice = ChatChoice(
            text=text,
            finish_reason=finish if isinstance(finish, str) else None,
            logprobs=_parse_logprobs(raw.get("logprobs"), where),
        )
        indexed.append((index if isinstance(index, int) else pos, choice))
    if len(indexed) < n:
        raise TooFewChoices(f"{len(indexed)} choice(s) for n={n}")
    indexed.sort(key=lambda ic: ic[0])
    usage = payload.get("usage")
    choices = tuple(c for _, c in indexed[:n])
    return choices, _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")


def _one_line(text: str, limit: int = DETAIL_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class OpenAIChatClient:
    """Chat completions against one :class:`HttpEndpointConfig`, batch by batch.

    Args:
        config: the endpoint, its limits and where its key is.
        rng: the jitter's random source (timing only, never data); seeded by default.
        sleep: how to wait between attempts (tests record the pauses instead of sleeping).
    """

    def __init__(
        self,
        config: HttpEndpointConfig,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random(0)
        self._sleep = sleep
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIChatClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    def complete_batch(
        self, requests: Sequence[ChatRequest], *, check: ReplyCheck | None = None
    ) -> list[ChatOutcome]:
        """Run ``requests`` concurrently and return one outcome per request, in order.

        Why synchronous: the engine's roles are plain functions. Batches on one client run one
        after another, so ``max_concurrency`` bounds what this client sends at any time; called
        from inside a running event loop, the batch runs on a worker thread.
        """
        with self._lock:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self.complete_many(requests, check=check))
            with ThreadPoolExecutor(1, thread_name_prefix="prefloop-llm") as pool:
                return pool.submit(asyncio.run, self.complete_many(requests, check=check)).result()

    def open_session(self) -> aiohttp.ClientSession:
        """A session whose connection pool matches ``max_concurrency`` (keep-alive reused)."""
        connector = aiohttp.TCPConnector(limit=self.config.max_concurrency, limit_per_host=0)
        return aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False
        )

    async def complete_many(
        self,
        requests: Sequence[ChatRequest],
        *,
        check: ReplyCheck | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> list[ChatOutcome]:
        """Every request's outcome, in order; at most ``max_concurrency`` in flight.

        The key is read once per batch; if it cannot be read, every request fails with kind
        ``api_key`` (nothing is sent).
        """
        if not requests:
            return []
        try:
            key = self.config.read_api_key()
        except ApiKeyError as exc:
            log.error("%s", exc)
            return [ChatFailure("api_key", str(exc), attempts=0) for _ in requests]
        headers = {"Content-Type": "application/json"}
        secret = key.get_secret_value() if key is not None else None
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        own = session is None
        live = self.open_session() if session is None else session
        outcomes: list[ChatOutcome] = []
        slots: list[ChatOutcome | None] = [None] * len(requests)
        order = iter(range(len(requests)))  # shared by the workers: each takes the next index

        async def worker() -> None:
            for i in order:
                slots[i] = await self._complete_one(live, headers, secret, requests[i], check)

        try:
            workers = min(self.config.max_concurrency, len(requests))
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            if own:
                await live.close()
        for outcome in slots:
            assert outcome is not None  # every index was taken by a worker
            outcomes.append(outcome)
        return outcomes

    async def _complete_one(
        self,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        secret: str | None,
        request: ChatRequest,
        check: ReplyCheck | None,
    ) -> ChatOutcome:
        try:
            return await self._retrying(session, headers, secret, request, check)
        except Exception as exc:  # a batch never raises: record what happened instead
            message = self._redact(f"unexpected {type(exc).__name__}: {exc}", secret)
            log.error("%s %s: %s", self.config.base_url, self.config.model, message)
            return ChatFailure("client_error", message, attempts=0)

    def _redact(self, text: str, secret: str | None) -> str:
        return text.replace(secret, "**********") if secret else text

    async def _retrying(
        self,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        secret: str | None,
        request: ChatRequest,
        check: ReplyCheck | None,
    ) -> ChatOutcome:
        cfg = self.config
        started = time.monotonic()  # a worker took the request: the budget counts from here
        deadline = started + cfg.retry_budget_seconds
        body = json.dumps(request.body(cfg.model, cfg.extra_body)).encode("utf-8")
        where = f"{cfg.base_url} model {cfg.model}"
        attempt = 0
        while True:
            attempt += 1
            timeout = min(cfg.timeout_seconds, max(deadline - time.monotonic(), 0.001))
            outcome = await self._attempt(session, body, headers, timeout, request.n)
            if isinstance(outcome, ChatResult):
                result = ChatResult(
                    outcome.choices,
                    outcome.prompt_tokens,
                    outcome.completion_tokens,
                    seconds=time.monotonic() - started,
                    attempts=attempt,
                )
                reason = self._checked(check, result)
                if reason is None:
                    return result
                outcome = _Fault("invalid_reply", f"reply refused: {_one_line(reason)}")
            fault = outcome
            message = self._redact(fault.message, secret)
            retryable = fault.kind in RETRYABLE_KINDS
            pause = full_jitter_pause(
                attempt, cfg.backoff_initial_seconds, cfg.backoff_max_seconds, self._rng
            )
            if fault.retry_after_seconds is not None:
                pause = max(pause, fault.retry_after_seconds)
            left = deadline - time.monotonic()
            if not retryable or attempt >= cfg.max_attempts or pause >= left:
                why = (
                    "not retryable"
                    if not retryable
                    else f"{attempt} attempt(s), the limit"
                    if attempt >= cfg.max_attempts
                    else f"the next pause ({pause:.2f}s) would pass the retry budget of "
                    f"{cfg.retry_budget_seconds:g}s"
                )
                text = f"{where}: {message} ({why})"
                log.warning("request failed: %s", text)
                return ChatFailure(
                    fault.kind,
                    text,
                    attempts=attempt,
                    seconds=time.monotonic() - started,
                    status=fault.status,
                )
            log.info(
                "%s: attempt %d/%d failed (%s); retrying in %.2fs",
                where,
                attempt,
                cfg.max_attempts,
                message,
                pause,
            )
            await self._sleep(pause)

    @staticmethod
    def _checked(check: ReplyCheck | None, result: ChatResult) -> str | None:
        if check is None:
            return None
        try:
            return check(result)
        except Exception as exc:  # a check that raises refuses the reply
            return f"the reply check raised {type(exc).__name__}: {exc}"

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        n: int,
    ) -> ChatResult | _Fault:
        try:
            async with session.post(
                self.config.chat_url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                status = resp.status
                wait = retry_after_seconds(resp.headers) if status in (429, 503) else None
        except TimeoutError:
            return _Fault("timeout", f"no complete reply within {timeout:.2f}s")
        except (aiohttp.ClientError, OSError) as exc:
            detail = str(exc) or "connection closed"
            return _Fault("connection", f"{type(exc).__name__}: {_one_line(detail)}")
        if status != 200:
            detail = _one_line(raw.decode("utf-8", "replace"))
            message = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
            if status == 429:
                return _Fault("rate_limited", message, status, wait)
            if status >= 500:
                return _Fault("server_error", message, status, wait)
            if status == 408:
                return _Fault("timeout", message, status)
            return _Fault("client_error", message, status)
        try:
            payload = json.loads(raw)
            choices, prompt_tokens, completion_tokens = parse_chat_response(payload, n)
        except TooFewChoices as exc:
            return _Fault("too_few_choices", f"fewer choices than asked: {exc}", status)
        except (ValueError, UnicodeDecodeError) as exc:
            return _Fault("malformed", f"malformed reply: {_one_line(str(exc))}", status)
        return ChatResult(choices, prompt_tokens, completion_tokens, seconds=0.0, attempts=0)
