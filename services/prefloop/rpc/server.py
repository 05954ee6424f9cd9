"""The grpc.aio server every role service runs on.

One builder gives all five roles the same behaviour: health checking (``grpc.health.v1``,
SERVING per service once it is built), server reflection, a max message size (64 MiB by
default; bigger requests get RESOURCE_EXHAUSTED from gRPC itself), optional TLS, optional bearer
token auth, status-code mapping and Prometheus metrics, and a graceful shutdown on SIGTERM /
SIGINT (health goes NOT_SERVING, no new calls are accepted, in-flight calls get ``grace``
seconds to finish).

One port, one server: every server sets ``grpc.so_reuseport=0``. gRPC's default
(SO_REUSEPORT) lets a second process bind a port that is in use and silently share its
connections - two judges behind one port, each with its own verdict log, would judge a pair
twice. With the option off, a second bind fails at start with :class:`StartupError` ("address
in use: port P"), which ``prefloop serve`` reports in one line and a non-zero exit.

Status mapping (servicers just raise): bad input - any ``ValueError`` (AcquisitionError,
DataError, SpecError, TensorError, RequestError) or a JudgeError / GenerationError - becomes
INVALID_ARGUMENT with the exception's message, which names the field; transient faults
(``ConnectionError``, ``TimeoutError``, :class:`Unavailable`) become UNAVAILABLE, which clients
retry; anything else is INTERNAL.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import signal
import socket
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
from prefloop.rpc.observing import HEALTH_PREFIX, ObservingInterceptor

log = logging.getLogger("prefloop.rpc")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
REFLECTION_PREFIX = "/grpc.reflection."


class Unavailable(RuntimeError):
    """A transient fault (a dependency not ready yet); clients should retry."""


class StartupError(RuntimeError):
    """A service cannot start (its port is in use, its state is held by another process).

    Why a type of its own: ``prefloop serve`` prints it as one line and exits non-zero instead
    of a traceback; the message says what is in the way and where.
    """


@dataclass(frozen=True)
class ServerConfig:
    """How a role service listens.

    Attributes:
        port: gRPC port (0 picks a free one; :func:`start_server` returns the bound port).
        host: interface to bind (default 127.0.0.1: loopback only, not reachable from other
            hosts; 0.0.0.0 for all interfaces).
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
        """gRPC options: no port sharing (see the module docstring), message size limits, extras."""
        return [
            ("grpc.so_reuseport", 0),
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
        self.metrics.close()


async def start_server(
    config: ServerConfig, registrars: list[Registrar], metrics: ServiceMetrics
) -> RunningServer:
    """Build, bind and start a server with the given servicers; health says SERVING."""
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if config.auth_token_file is not None:
        token = Path(config.auth_token_file).read_text().strip()
        interceptors.append(TokenAuthInterceptor(token))
    interceptors.append(ObservingInterceptor(metrics, status_for))
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
    in_use = probe_bind(config.host, config.port) if config.port else None
    if in_use is not None and in_use.errno == errno.EADDRINUSE:
        raise StartupError(bind_failure(config.host, config.port, "port", in_use))
    try:
        if config.tls_cert is not None and config.tls_key is not None:
            creds = grpc.ssl_server_credentials(
                [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
            )
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc >= 1.5x raises "Failed to bind to address ..."
        raise StartupError(bind_failure(config.host, config.port, "port", exc)) from None
    if port == 0:  # older grpc returns 0 instead of raising
        raise StartupError(bind_failure(config.host, config.port, "port", None))
    try:
        metrics.serve(config.metrics_port, config.host)
    except OSError as exc:
        raise StartupError(
            bind_failure(config.host, config.metrics_port, "metrics port", exc)
        ) from None
    await server.start()
    for name in [*services, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, health_servicer, services, metrics, config.grace_seconds)


def probe_bind(host: str, port: int) -> OSError | None:
    """Bind ``host:port`` with a plain socket (SO_REUSEADDR, as gRPC does) and let it go.

    Why: gRPC's bind error does not say whether the port is taken, and it logs its own
    multi-line complaint; a probe first tells "address in use" apart from the rest.
    """
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except OSError as e:
        return e
    return None


def bind_failure(host: str, port: int, what: str, exc: BaseException | None) -> str:
    """One line saying why ``host:port`` could not be bound: in use, or the reason given."""
    probe = probe_bind(host, port)
    if probe is not None and probe.errno == errno.EADDRINUSE:
        return (
            f"address in use: {what} {port} on {host} is taken by another process "
            f"(stop it, or choose another {what})"
        )
    reason = probe or exc or OSError("gRPC could not add the port")
    first_line = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return f"cannot bind {what} {host}:{port}: {first_line}"


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
