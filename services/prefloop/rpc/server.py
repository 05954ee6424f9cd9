"""The grpc.aio server every role service runs on.

One builder gives all five roles the same behaviour: health checking (``grpc.health.v1``,
SERVING per service once it is built), server reflection, a max message size (64 MiB by
default; bigger requests get RESOURCE_EXHAUSTED from gRPC itself), optional TLS, optional bearer
token auth, status-code mapping and Prometheus metrics, and a graceful shutdown on SIGTERM /
SIGINT (health goes NOT_SERVING, no new calls are accepted, in-flight calls get ``grace``
seconds to finish).

Status mapping (servicers just raise): bad input - any ``ValueError`` (AcquisitionError,
DataError, SpecError, TensorError, RequestError) or a JudgeError / GenerationError - becomes
INVALID_ARGUMENT with the exception's message, which names the field; transient faults
(``ConnectionError``, ``TimeoutError``, :class:`Unavailable`) become UNAVAILABLE, which clients
retry; anything else is INTERNAL.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from prefloop.generation.base import GenerationError
from prefloop.judge.base import JudgeError
from prefloop.rpc.metrics import ServiceMetrics

log = logging.getLogger("prefloop.rpc")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."


class Unavailable(RuntimeError):
    """A transient fault (a dependency not ready yet); clients should retry."""


@dataclass(frozen=True)
class ServerConfig:
    """How a role service listens.

    Attributes:
        port: gRPC port (0 picks a free one; :func:`start_server` returns the bound port).
        host: interface to bind.
        metrics_port: Prometheus port (0: no HTTP endpoint).
        max_message_bytes: largest request or response accepted.
        tls_cert / tls_key: PEM files; both or neither.
        auth_token_file: file holding the bearer token every call must present.
        grace_seconds: how long in-flight calls may run after SIGTERM.
    """

    port: int = 0
    host: str = "127.0.0.1"
    metrics_port: int = 0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auth_token_file: Path | None = None
    grace_seconds: float = 30.0
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def channel_options(self) -> list[tuple[str, Any]]:
        """gRPC options: message size limits plus any extra."""
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            *self.options,
        ]


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code a servicer exception maps to (see the module docstring)."""
    if isinstance(exc, ValueError | JudgeError | GenerationError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, Unavailable | ConnectionError | TimeoutError):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def _split_method(full: str) -> tuple[str, str]:
    parts = full.strip("/").split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else (full, "")


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    """Maps servicer exceptions to status codes and records request counts and latency."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, method = _split_method(handler_call_details.method)
        metrics = self.metrics

        def record(code: grpc.StatusCode, started: float) -> None:
            metrics.requests.labels(service, method, code.name).inc()
            metrics.latency.labels(service, method).observe(time.perf_counter() - started)

        async def fail(exc: Exception, context: grpc.aio.ServicerContext, started: float) -> None:
            code = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.exception("%s/%s failed", service, method)
            record(code, started)
            await context.abort(code, f"{type(exc).__name__}: {exc}")

        def code_of(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
            c = context.code()
            return c if isinstance(c, grpc.StatusCode) else grpc.StatusCode.UNKNOWN

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    reply = await inner_uu(request, context)
                except grpc.aio.AbortError:
                    record(code_of(context), started)
                    raise
                except asyncio.CancelledError:
                    record(grpc.StatusCode.CANCELLED, started)
                    raise
                except Exception as exc:
                    await fail(exc, context, started)
                    raise AssertionError("unreachable: abort raises") from exc
                record(grpc.StatusCode.OK, started)
                return reply

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    async for reply in inner_us(request, context):
                        yield reply
                except grpc.aio.AbortError:
                    record(code_of(context), started)
                    raise
                except asyncio.CancelledError:
                    record(grpc.StatusCode.CANCELLED, started)
                    raise
                except Exception as exc:
                    await fail(exc, context, started)
                    raise AssertionError("unreachable: abort raises") from exc
                record(grpc.StatusCode.OK, started)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <token>`` (health checks stay open)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("auth token file is empty")
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if handler_call_details.method.startswith(HEALTH_PREFIX):
            return await continuation(handler_call_details)
        presented = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                presented = value.encode() if isinstance(value, str) else value
        if hmac.compare_digest(presented, self._expected):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong 'authorization: Bearer <token>' metadata",
            )

        async def deny_stream(
            request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            await deny(request, context)
            yield None  # pragma: no cover - abort raises first

        if handler is not None and handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(deny_stream)
        return grpc.unary_unary_rpc_method_handler(deny)


Registrar = Callable[[grpc.aio.Server], str]
"""Adds one servicer to a server and returns its full service name (for health/reflection)."""


@dataclass
class RunningServer:
    """A started server, its bound port, its health servicer and its metrics."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    services: list[str]
    metrics: ServiceMetrics
    grace_seconds: float

    async def stop(self) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, let in-flight calls finish."""
        for name in [*self.services, ""]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(self.grace_seconds)


async def start_server(
    config: ServerConfig, registrars: list[Registrar], metrics: ServiceMetrics
) -> RunningServer:
    """Build, bind and start a server with the given servicers; health says SERVING."""
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if config.auth_token_file is not None:
        token = Path(config.auth_token_file).read_text().strip()
        interceptors.append(TokenAuthInterceptor(token))
    interceptors.append(ObservingInterceptor(metrics))
    server = grpc.aio.server(interceptors=interceptors, options=config.channel_options())
    services = [register(server) for register in registrars]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *services,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    address = f"{config.host}:{config.port}"
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together: give both or neither")
    if config.tls_cert is not None and config.tls_key is not None:
        creds = grpc.ssl_server_credentials(
            [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
        )
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind {address}")
    await server.start()
    for name in [*services, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    metrics.serve(config.metrics_port, config.host)
    return RunningServer(server, port, health_servicer, services, metrics, config.grace_seconds)


async def serve_forever(
    config: ServerConfig,
    registrars: list[Registrar],
    metrics: ServiceMetrics,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully (in-flight calls finish)."""
    running = await start_server(config, registrars, metrics)
    if on_ready is not None:
        on_ready(running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(running.server.wait_for_termination())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        await running.stop()
    waiter.cancel()
    stopper.cancel()
