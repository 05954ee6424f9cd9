"""The driver's loop gauges: where a run stands, for Prometheus (``prefloop run --metrics-port``).

The driver (the process running the round engine, embedded or against role services) is the
only one that knows the loop's state, so it exports it: rounds done, annotations used and the
budget they count against, held-out accuracy of the reward model and its version, plus the
runtime families every prefloop process has (process, Python, ``prefloop_build_info``).

Every family carries a ``run`` label (the ActiveRun's name): one Prometheus scrapes many runs,
and runs are few, so the label stays cheap. The gauges are set after each round from the
round's metrics row and once more when the loop stops; the run's info and budget are there from
the start.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

from prefloop.engine.checkpoint import RunState
from prefloop.rpc.metrics import MetricsEndpoint
from prefloop.spec import ActiveRun

ROUND_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
"""A round is generation + scoring + judging + training: seconds on CPU, up to hours at scale."""


class DriverMetrics(MetricsEndpoint):
    """Gauges of one run's loop, in a private registry with the runtime collectors."""

    def __init__(self, run: ActiveRun, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.run_name = run.metadata.name
        r, labels = self.registry, ["run"]
        self.info = Gauge(
            "prefloop_run_info",
            "Always 1; labels name the run's acquisition method and seed.",
            ["run", "method", "seed"],
            registry=r,
        )
        self.round = Gauge("prefloop_run_round", "Rounds completed.", labels, registry=r)
        self.annotations_used = Gauge(
            "prefloop_run_annotations_used",
            "Judge annotations spent so far (the budget's unit).",
            labels,
            registry=r,
        )
        self.annotations_budget = Gauge(
            "prefloop_run_annotations_budget",
            "The run's annotation budget (spec.budget.maxAnnotations); absent when unlimited.",
            labels,
            registry=r,
        )
        self.heldout_accuracy = Gauge(
            "prefloop_run_heldout_accuracy_ratio",
            "Reward model's pairwise accuracy on the held-out prompts after the last round (0-1).",
            labels,
            registry=r,
        )
        self.reward_model_version = Gauge(
            "prefloop_run_reward_model_version",
            "Version of the reward model the last round trained.",
            labels,
            registry=r,
        )
        self.finished = Gauge(
            "prefloop_run_finished",
            "1 once the run stopped (budget or prompts).",
            labels,
            registry=r,
        )
        self.round_seconds = Histogram(
            "prefloop_run_round_duration_seconds",
            "Wall time of one round, all five steps.",
            labels,
            buckets=ROUND_SECONDS_BUCKETS,
            registry=r,
        )
        spec = run.spec
        self.info.labels(self.run_name, spec.acquisition.method, str(spec.seed)).set(1)
        if spec.budget.max_annotations is not None:
            self.annotations_budget.labels(self.run_name).set(spec.budget.max_annotations)
        self.finished.labels(self.run_name).set(0)

    def observe_round(self, row: dict[str, Any]) -> None:
        """Update the gauges from one round's metrics row (the engine's ``on_round`` payload)."""
        name = self.run_name
        self.round.labels(name).set(row["round"])
        self.annotations_used.labels(name).set(row["annotations_used"])
        self.reward_model_version.labels(name).set(row.get("model_version", 0))
        accuracy = row.get("heldout_accuracy")
        if isinstance(accuracy, int | float) and not math.isnan(accuracy):
            self.heldout_accuracy.labels(name).set(accuracy)
        seconds = row.get("round_seconds")
        if isinstance(seconds, int | float) and not math.isnan(seconds):
            self.round_seconds.labels(name).observe(seconds)

    def observe_finished(self, state: RunState) -> None:
        """The loop stopped: final standing (also right for a resumed run with nothing left)."""
        name = self.run_name
        self.round.labels(name).set(state.round)
        self.annotations_used.labels(name).set(state.annotations_used)
        self.reward_model_version.labels(name).set(state.model_version)
        self.finished.labels(name).set(1)
