"""What every role service shares: the run it serves and the run check on each request.

Every ``prefloop serve <role> RUN.yaml`` builds its role from the same ActiveRun manifest, so
all services agree on seeds, models and the judge; a request for another run is a client error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefloop.bus.base import Bus
from prefloop.bus.publisher import RunPublisher
from prefloop.rpc.convert import RequestError
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.spec import ActiveRun
from prefloop.v1 import common_pb2


@dataclass
class ServiceContext:
    """The run a service serves and where it keeps state.

    Attributes:
        run: the validated ActiveRun manifest.
        manifest_dir: directory relative paths in the manifest resolve against.
        state_dir: the service's own durable state (judge log, trainer versions, feature cache).
        checkpoint_dir: shared directory where the trainer publishes reward-model versions.
        metrics: the service's Prometheus metrics.
        bus: the run's data plane (``--kafka``), or None: the judge then publishes no
            verdicts, the trainer takes pairs inline, the reward service scans checkpoint_dir.
    """

    run: ActiveRun
    manifest_dir: Path | None
    state_dir: Path
    checkpoint_dir: Path
    metrics: ServiceMetrics
    bus: Bus | None = None

    @property
    def run_name(self) -> str:
        return self.run.metadata.name

    def publisher(self) -> RunPublisher | None:
        """A publisher to this run's topics when the service has a bus."""
        return None if self.bus is None else RunPublisher(self.bus, self.run_name)

    def check_run(self, ref: common_pb2.RunRef | str, field: str = "run") -> None:
        """Reject a request for a run this service does not serve."""
        check_run(self.run_name, ref, field)


def check_run(served: str, ref: common_pb2.RunRef | str, field: str = "run") -> None:
    """Reject a request for another run than ``served``, naming the field and both names.

    Why: services of two runs can share a host; a request meant for the other run must fail
    loudly rather than be answered with this run's models, judge or selection rule.
    """
    name = ref if isinstance(ref, str) else ref.run
    label = field if isinstance(ref, str) else f"{field}.run"
    if name != served:
        raise RequestError(f"{label}: this service serves run {served!r}, not {name!r}")
