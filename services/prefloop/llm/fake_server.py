"""A real OpenAI-compatible chat server on loopback, for tests and ``prefloop bench live``.

It answers ``POST /v1/chat/completions`` over real HTTP (aiohttp), so the client's connection
handling, timeouts and retries meet a real socket. What it says comes from a pluggable reply
function ``(request body, choice index) -> str | FakeReply`` (scripted replies, or a tiny
transformers model); a :class:`FakeReply` may carry per-position top log-probabilities, which
the server returns in OpenAI's ``logprobs.content`` shape when the request asks for them.

Faults are injected per request, first from a FIFO queue (:meth:`FakeOpenAIServer.inject`),
else from an optional ``fault_for(body, request_number)`` function: 429 with ``Retry-After``,
500, a hang past the client's timeout, a closed connection, malformed JSON, fewer choices than
asked, a replaced reply text (e.g. one without a rating digit) and garbage log-probabilities.
Every request is counted (``request_count``, and the most handled at once, ``max_in_flight``)
and, unless ``record=False``, its body and Authorization header are kept.

Started with :meth:`FakeOpenAIServer.start` it runs on its own thread and event loop;
``python -m prefloop.llm.fake_server --latency-ms 50`` runs it as a process (what the benchmark
does, so that server and client do not share a core's event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

FaultKind = Literal[
    "rate_limit",
    "server_error",
    "hang",
    "disconnect",
    "malformed_json",
    "fewer_choices",
    "text",
    "bad_logprobs",
]


@dataclass(frozen=True)
class Fault:
    """What to do instead of a normal reply to one request.

    ``retry_after`` is the ``Retry-After`` header of a ``rate_limit`` (seconds as text, None for
    no header); ``seconds`` is how long a ``hang`` waits before answering normally (a client with
    a shorter timeout has gone by then); ``text`` replaces the reply text for kind ``text``.
    """

    kind: FaultKind
    retry_after: str | None = None
    seconds: float = 30.0
    text: str = ""


@dataclass(frozen=True)
class FakeReply:
    """One choice: its text and, optionally, per generated position ``{token: logprob}``.

    With ``top_logprobs`` the generated token at a position is that dict's most likely one.
    Token counts default to whitespace-separated words.
    """

    text: str
    finish_reason: str = "stop"
    top_logprobs: tuple[dict[str, float], ...] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


ReplyFunction = Callable[[dict[str, Any], int], "FakeReply | str"]
FaultFunction = Callable[[dict[str, Any], int], "Fault | None"]


def echo_reply(body: dict[str, Any], index: int) -> str:
    """The default reply: the last message's content, echoed (deterministic)."""
    messages = body.get("messages") or [{}]
    return f"echo {index}: {messages[-1].get('content', '')}"


RATING_LOGPROBS = {str(r): -0.5 * abs(r - 4) for r in range(1, 6)} | {
    f"t{k}": -5.0 - k for k in range(20)
}
"""A first position a rubric judge might see: ratings 1-5 (4 most likely) among other tokens."""


def fixed_reply(text: str) -> ReplyFunction:
    """Always ``text``; a request that asks for log-probabilities gets a rating reply instead
    (``"4"`` with 25 alternatives at its one position), shaped like a rubric judge's."""

    def reply(body: dict[str, Any], index: int) -> FakeReply | str:
        if body.get("logprobs"):
            return FakeReply("4", top_logprobs=(RATING_LOGPROBS,))
        return text

    return reply


def _words(text: str) -> int:
    return len(text.split())


def _logprobs_content(reply: FakeReply, top_n: int) -> list[dict[str, Any]]:
    positions = reply.top_logprobs
    if positions is None:
        positions = tuple({word: 0.0} for word in reply.text.split())
    content = []
    for pos in positions:
        ranked = sorted(pos.items(), key=lambda kv: -kv[1])
        token, logprob = ranked[0]
        content.append(
            {
                "token": token,
                "logprob": logprob,
                "top_logprobs": [{"token": t, "logprob": lp} for t, lp in ranked[:top_n]],
            }
        )
    return content


class FakeOpenAIServer:
    """``POST /v1/chat/completions`` on 127.0.0.1, with scripted replies and injected faults.

    Args:
        reply: the reply function (default :func:`echo_reply`).
        latency_seconds: fixed wait before every normal reply (the benchmark's 50 ms).
        fault_for: faults chosen per request, used when the injected queue is empty.
        record: keep every request body and its Authorization header (None when absent).
        reply_in_thread: call ``reply`` on a worker thread (for slow ones, e.g. a real model).
    """

    def __init__(
        self,
        reply: ReplyFunction = echo_reply,
        *,
        latency_seconds: float = 0.0,
        fault_for: FaultFunction | None = None,
        record: bool = True,
        reply_in_thread: bool = False,
    ) -> None:
        self.reply = reply
        self.latency_seconds = latency_seconds
        self.fault_for = fault_for
        self.record = record
        self.reply_in_thread = reply_in_thread
        self.request_count = 0
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults_served: list[FaultKind] = []
        self._queue: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The API root to put in :class:`~prefloop.llm.config.HttpEndpointConfig`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, *faults: Fault) -> None:
        """Serve these faults, in order, to the next requests (one fault per request)."""
        with self._lock:
            self._queue.extend(faults)

    def _next_fault(self, body: dict[str, Any], number: int) -> Fault | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.fault_for(body, number) if self.fault_for is not None else None

    def app(self) -> web.Application:
        """The aiohttp application (one route)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._handle_counted(request)
        finally:
            self.in_flight -= 1

    async def _handle_counted(self, request: web.Request) -> web.StreamResponse:
        self.request_count += 1
        number = self.request_count
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": {"message": "invalid JSON body"}}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return web.json_response({"error": {"message": "messages must be a list"}}, status=400)
        if self.record:
            self.requests.append(body)
            self.authorizations.append(request.headers.get("Authorization"))
        fault = self._next_fault(body, number)
        if fault is not None:
            self.faults_served.append(fault.kind)
            early = await self._early_fault(fault, request)
            if early is not None:
                return early
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        return await self._reply(body, fault)

    async def _early_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "rate_limit":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            err = {"error": {"message": "rate limit reached", "type": "rate_limit"}}
            return web.json_response(err, status=429, headers=headers)
        if fault.kind == "server_error":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault.kind == "hang":
            assert self._stopping is not None
            try:
                await asyncio.wait_for(self._stopping.wait(), fault.seconds)
            except TimeoutError:
                return None
            return web.Response(status=503)
        if fault.kind == "disconnect":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=200)
        if fault.kind == "malformed_json":
            return web.Response(text='{"choices": [{"message": ', content_type="application/json")
        return None

    async def _reply(self, body: dict[str, Any], fault: Fault | None) -> web.Response:
        n = int(body.get("n") or 1)
        if fault is not None and fault.kind == "fewer_choices":
            n -= 1
        if self.reply_in_thread:
            replies = await asyncio.get_running_loop().run_in_executor(
                None, lambda: [self.reply(body, i) for i in range(n)]
            )
        else:
            replies = [self.reply(body, i) for i in range(n)]
        want_logprobs = bool(body.get("logprobs"))
        top_n = int(body.get("top_logprobs") or 0)
        prompt_words = sum(_words(str(m.get("content", ""))) for m in body["messages"])
        choices = []
        prompt_tokens, completion_tokens = prompt_words, 0
        for i, raw in enumerate(replies):
            reply = FakeReply(raw) if isinstance(raw, str) else raw
            if fault is not None and fault.kind == "text":
                reply = FakeReply(fault.text)
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
            if want_logprobs:
                content = _logprobs_content(reply, top_n)
                if fault is not None and fault.kind == "bad_logprobs":
                    content = [{"token": "1", "logprob": "high", "top_logprobs": "none"}]
                choice["logprobs"] = {"content": content}
            choices.append(choice)
            if reply.prompt_tokens is not None:
                prompt_tokens = reply.prompt_tokens
            completion_tokens += (
                reply.completion_tokens
                if reply.completion_tokens is not None
                else len(reply.top_logprobs)
                if reply.top_logprobs is not None
                else _words(reply.text)
            )
        payload = {
            "id": f"chatcmpl-fake-{self.request_count}",
            "object": "chat.completion",
            "model": body.get("model", ""),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return web.json_response(payload)

    async def _start_async(self, port: int) -> None:
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port

    async def _stop_async(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self, port: int = 0) -> FakeOpenAIServer:
        """Serve on a thread of its own; returns once the port is bound (``port=0``: any free)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_async(port))
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_async())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving (hung requests are released) and join the thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until killed, printing ``listening <base_url>`` once the port is bound."""
    parser = argparse.ArgumentParser(prog="python -m prefloop.llm.fake_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--reply", default="ok", help="the fixed reply text")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(
        fixed_reply(str(args.reply)), latency_seconds=args.latency_ms / 1000.0, record=False
    )

    async def serve() -> None:
        await server._start_async(args.port)
        print(f"listening {server.base_url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server._stop_async()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
