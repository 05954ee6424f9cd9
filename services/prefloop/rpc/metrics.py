"""Prometheus metrics of a role service, served on their own port.

Three groups of families, all in one private ``CollectorRegistry`` per service (so several
servers can live in one process, as in the tests):

- the standard gRPC server families with go-grpc-prometheus' exact names and labels
  (``grpc_server_started_total``, ``grpc_server_handled_total{grpc_code}``,
  ``grpc_server_msg_received_total``, ``grpc_server_msg_sent_total``,
  ``grpc_server_handling_seconds``; labels ``grpc_type``, ``grpc_service``, ``grpc_method``), so
  stock gRPC dashboards and alerts work unchanged. They are recorded by the server's interceptor
  (:mod:`prefloop.rpc.server`), which leaves health checks out. Why not a library:
  py-grpc-prometheus 0.8 is a sync ``grpc.ServerInterceptor`` that ``grpc.aio.server`` refuses,
  and OpenTelemetry's gRPC instrumentation records traces but no metrics;
- the runtime: process and Python collectors and ``prefloop_build_info{version,python,torch}``;
- prefloop's own ``prefloop_*`` families, the same in every role so one dashboard covers all five
  (a family a role does not touch stays at 0: the oracle judge counts 0 tokens).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from prefloop import __version__

if TYPE_CHECKING:  # the driver imports this module too, and needs no gRPC
    import grpc

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds; up to a minute because a generation or training call can take that long."""

GRPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"]

__all__ = [
    "GRPC_LABELS",
    "LATENCY_BUCKETS",
    "MetricsEndpoint",
    "ServiceMetrics",
    "runtime_registry",
    "serve_registry",
]


def _distribution_version(name: str) -> str:
    """Installed version of ``name`` without importing it ("none" when absent)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def runtime_registry() -> CollectorRegistry:
    """A new registry with the process and Python collectors and ``prefloop_build_info``.

    Why: every prefloop process (role service or driver) should tell the same runtime story -
    CPU, memory, open files, GC, and which versions it runs - whatever else it exports.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    info = Gauge(
        "prefloop_build_info",
        "Always 1; the labels say which prefloop, Python and torch this process runs.",
        ["version", "python", "torch"],
        registry=registry,
    )
    info.labels(__version__, platform.python_version(), _distribution_version("torch")).set(1)
    return registry


def serve_registry(registry: CollectorRegistry, port: int, addr: str) -> WSGIServer | None:
    """Expose ``registry`` as ``/metrics`` on ``addr:port`` (daemon thread); 0 disables it.

    Returns the HTTP server so its owner can shut it down (``.shutdown()`` then
    ``.server_close()``).
    """
    if not port:
        return None
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server


class MetricsEndpoint:
    """A private registry and the ``/metrics`` HTTP endpoint that serves it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or runtime_registry()
        self._http: WSGIServer | None = None

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP on ``addr:port`` (a daemon thread); 0 disables it."""
        self._http = serve_registry(self.registry, port, addr) or self._http

    def close(self) -> None:
        """Stop the HTTP endpoint, if one runs (frees the port)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class ServiceMetrics(MetricsEndpoint):
    """The metric families of one role service, registered in a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        # -- standard gRPC server families (go-grpc-prometheus names) --
        self.grpc_started = Counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            GRPC_LABELS,
            registry=r,
        )
        self.grpc_handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            [*GRPC_LABELS, "grpc_code"],
            registry=r,
        )
        self.grpc_msg_received = Counter(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            GRPC_LABELS,
            registry=r,
        )
        self.grpc_msg_sent = Counter(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            GRPC_LABELS,
            registry=r,
        )
        self.grpc_handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            GRPC_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # -- prefloop's own families --
        self.requests = Counter(
            "prefloop_rpc_requests",
            "RPCs handled, by service, method and status code.",
            ["service", "method", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "prefloop_rpc_latency_seconds",
            "RPC handling time, by service and method.",
            ["service", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.responses_generated = Counter(
            "prefloop_responses_generated",
            "Responses produced by the generation service.",
            registry=r,
        )
        self.pairs_selected = Counter(
            "prefloop_pairs_selected", "Pairs picked by acquisition rules.", registry=r
        )
        self.annotations = Counter(
            "prefloop_annotations", "New judge verdicts (replayed records excluded).", registry=r
        )
        self.judge_tokens = Counter(
            "prefloop_judge_tokens",
            "Tokens spent by the judge (0 for the stored-score oracle).",
            registry=r,
        )
        self.training_steps = Counter(
            "prefloop_training_steps", "Optimizer steps taken by the trainer.", registry=r
        )
        self.checkpoint_version = Gauge(
            "prefloop_checkpoint_version",
            "Model version (reward head or policy) held by this service.",
            registry=r,
        )

    # -- recording (called by the server's interceptor) ----------------------------------------
    def rpc_started(self, grpc_type: str, service: str, method: str) -> None:
        """A call arrived (``grpc_server_started_total``)."""
        self.grpc_started.labels(grpc_type, service, method).inc()

    def rpc_received(self, grpc_type: str, service: str, method: str) -> None:
        """One request message was read."""
        self.grpc_msg_received.labels(grpc_type, service, method).inc()

    def rpc_sent(self, grpc_type: str, service: str, method: str) -> None:
        """One response message was written."""
        self.grpc_msg_sent.labels(grpc_type, service, method).inc()

    def rpc_handled(
        self, grpc_type: str, service: str, method: str, code: grpc.StatusCode, seconds: float
    ) -> None:
        """A call ended with ``code`` after ``seconds``: standard and prefloop families."""
        self.grpc_handled.labels(grpc_type, service, method, code.name).inc()
        self.grpc_handling.labels(grpc_type, service, method).observe(seconds)
        self.requests.labels(service, method, code.name).inc()
        self.latency.labels(service, method).observe(seconds)
