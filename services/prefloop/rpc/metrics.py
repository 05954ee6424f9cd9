"""Prometheus metrics of a role service, served on their own port.

Every service exposes the same families (``prefloop_`` prefix) so one dashboard covers all five
roles; a family a role does not touch stays at 0 (the oracle judge counts 0 tokens). Each
service gets its own ``CollectorRegistry`` so several servers can live in one process (tests).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServiceMetrics:
    """The metric families of one service, registered in a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
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
            "prefloop_checkpoint_version", "Reward-model version held by this service.", registry=r
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose ``/metrics`` over HTTP on ``port`` (a daemon thread); 0 disables it."""
        if port:
            start_http_server(port, addr=addr, registry=self.registry)
