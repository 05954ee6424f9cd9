"""The server interceptor that turns servicer exceptions into status codes and records metrics.

What it records follows go-grpc-prometheus, so stock gRPC dashboards and alerts read our
services like any other gRPC server: ``grpc_server_started_total`` when a call arrives, one
``grpc_server_msg_received_total`` per request message read, one ``grpc_server_msg_sent_total``
per response message written, and at the end ``grpc_server_handled_total{grpc_code}`` plus the
``grpc_server_handling_seconds`` histogram (and prefloop's own ``prefloop_rpc_*`` families).
``grpc_type`` is ``unary``, ``client_stream``, ``server_stream`` or ``bidi_stream``.

Health checks (``grpc.health.v1``) pass through unrecorded: kubelet and load balancers probe
every few seconds, and counting the probes would drown the real traffic in the rates and
latency quantiles.

Exceptions: an abort keeps the code the servicer chose; a cancelled call is CANCELLED; any
other exception is mapped by the ``status_for`` function the server passes in and the call is
aborted with the exception's message (INTERNAL ones are logged with their traceback).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from prefloop.rpc.metrics import ServiceMetrics

log = logging.getLogger("prefloop.rpc")

HEALTH_PREFIX = "/grpc.health.v1.Health/"

StatusFor = Callable[[BaseException], grpc.StatusCode]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


def split_method(full: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    parts = full.strip("/").split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else (full, "")


def grpc_type_of(handler: grpc.RpcMethodHandler) -> str:
    """The go-grpc-prometheus ``grpc_type`` label of a method handler."""
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    if handler.response_streaming:
        return "server_stream"
    return "unary"


class _Call:
    """One call's bookkeeping: its labels, start time and the metrics it updates."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        grpc_type: str,
        service: str,
        method: str,
        status_for: StatusFor,
    ) -> None:
        self.metrics = metrics
        self.labels = (grpc_type, service, method)
        self.status_for = status_for
        self.started = time.perf_counter()
        metrics.rpc_started(*self.labels)

    def begin(self, request: Any, streaming_request: bool) -> tuple[_Call, Any]:
        """Count the request (one message, or each of a stream as it is read)."""
        if streaming_request:
            return self, self.count_requests(request)
        self.received()
        return self, request

    def received(self) -> None:
        self.metrics.rpc_received(*self.labels)

    def sent(self) -> None:
        self.metrics.rpc_sent(*self.labels)

    def handled(self, code: grpc.StatusCode) -> None:
        self.metrics.rpc_handled(*self.labels, code, time.perf_counter() - self.started)

    def finished(self, context: grpc.aio.ServicerContext) -> None:
        """Normal return: OK unless the servicer set another code with ``set_code``."""
        self.handled(_code_of(context, grpc.StatusCode.OK))

    async def failed(self, exc: BaseException, context: grpc.aio.ServicerContext) -> NoReturn:
        """Record how the call ended and re-raise (or abort with the mapped status)."""
        if isinstance(exc, grpc.aio.AbortError):
            self.handled(_code_of(context, grpc.StatusCode.UNKNOWN))
            raise exc
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.handled(grpc.StatusCode.CANCELLED)
            raise exc
        if not isinstance(exc, Exception):
            raise exc
        code = self.status_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.error("%s/%s failed", self.labels[1], self.labels[2], exc_info=exc)
        self.handled(code)
        await context.abort(code, f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable: abort raises") from exc

    async def count_requests(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Pass a request stream through, counting each message read."""
        async for request in requests:
            self.received()
            yield request


def _code_of(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else default


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    """Maps servicer exceptions to status codes and records every call but health checks."""

    def __init__(self, metrics: ServiceMetrics, status_for: StatusFor) -> None:
        self.metrics = metrics
        self.status_for = status_for

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_PREFIX):
            return handler
        service, method = split_method(handler_call_details.method)
        grpc_type = grpc_type_of(handler)

        def new_call() -> _Call:
            return _Call(self.metrics, grpc_type, service, method, self.status_for)

        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        for kind, make_handler, wrap, streaming_request in _WRAPPERS:
            inner = getattr(handler, kind)
            if inner is not None:
                behaviour = wrap(inner, new_call, streaming_request=streaming_request)
                return make_handler(behaviour, **codec)
        return handler


def _unary_response(
    inner: Callable[..., Any], new_call: Callable[[], _Call], *, streaming_request: bool
) -> Callable[..., Awaitable[Any]]:
    """Wrap a unary-response behaviour (unary or client-streaming)."""

    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call, request = new_call().begin(request, streaming_request)
        try:
            reply = await inner(request, context)
        except BaseException as exc:
            await call.failed(exc, context)
        call.sent()
        call.finished(context)
        return reply

    return behaviour


def _stream_response(
    inner: Callable[..., AsyncIterator[Any]],
    new_call: Callable[[], _Call],
    *,
    streaming_request: bool,
) -> Callable[..., AsyncIterator[Any]]:
    """Wrap a streaming-response behaviour (server-streaming or bidirectional)."""

    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call, request = new_call().begin(request, streaming_request)
        try:
            replies = inner(request, context)
            if inspect.isawaitable(replies):  # a coroutine that writes with context.write()
                await replies
            else:
                async for reply in replies:
                    yield reply
                    call.sent()  # counted once gRPC asked for the next one: this one went out
        except BaseException as exc:
            await call.failed(exc, context)
        call.finished(context)

    return behaviour


_WRAPPERS: tuple[
    tuple[str, Callable[..., grpc.RpcMethodHandler], Callable[..., Any], bool], ...
] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, _unary_response, False),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, _unary_response, True),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, _stream_response, False),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, _stream_response, True),
)
"""Per handler kind: the attribute holding the behaviour, its handler factory, the wrapper and
whether requests stream."""
