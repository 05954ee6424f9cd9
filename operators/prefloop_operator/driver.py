"""``prefloop driver``: the rounds of a cluster run, as the operator's driver Job runs them.

It is ``prefloop run MANIFEST --connect ...`` (the same round engine against the role
services) with what a pod on a cluster needs on top:

- **resume when there is something to resume**: a checkpoint on the volume means an earlier
  driver pod ran (killed, evicted, its node lost, or the run suspended), so the run continues
  from it (``--resume``); a fresh volume starts the run. The judge is never asked twice for a
  pair either way (the checkpoint holds every judgement, the judge service its verdict log);
- **stop after the round on SIGTERM**: Kubernetes sends SIGTERM when the Job is suspended or
  the pod evicted; the round in flight finishes and is checkpointed, no new one starts, and the
  driver exits with 143, which the Job's pod failure policy does not count as a failure;
- **progress for the operator**: a thread patches the ``<run>-progress`` ConfigMap after every
  checkpoint and step, with a heartbeat, and once at the end (:mod:`prefloop_operator.progress`);
- **the dataset out**: with ``spec.output.uri`` the outputs are copied there
  (:mod:`prefloop.data.output_uri`) before the run is reported finished.

Exit status: 0 finished; 143 stopped after a round (resumable); 2 invalid manifest or data
(the Job fails at once); 1 any other failure (the Job retries with a new pod, which resumes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from prefloop_operator.progress import STOPPED_EXIT_CODE, Progress, now_rfc3339

STEPS = (
    ("generation", "generate", "Generating"),
    ("reward", "score", "Scoring"),
    ("acquisition", "select", "Acquiring"),
    ("judge", "judge", "Judging"),
    ("trainer", "train", "Training"),
)
"""(role, method, step name): the round's steps, in order."""


class RoundsStopped(Exception):
    """SIGTERM arrived: the last round finished and is checkpointed; no new round starts."""


class RoundGuard:
    """Wraps the roles: records the step in flight, and refuses to start a new round after
    SIGTERM (a round starts with the generation call)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.step = ""

    def install_signal_handler(self) -> None:
        """SIGTERM: finish the round in flight, then stop."""

        def on_term(signum: int, frame: FrameType | None) -> None:
            log("SIGTERM, stopping after this round")
            self.stop.set()

        signal.signal(signal.SIGTERM, on_term)

    def wrap(self, roles: Any) -> None:
        """Patch each role's step method on the ``roles`` object."""
        for role_name, method, step in STEPS:
            role = getattr(roles, role_name)
            inner = getattr(role, method)
            setattr(role, method, self._guarded(inner, step, first=role_name == "generation"))

    def _guarded(self, inner: Any, step: str, first: bool) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if first and self.stop.is_set():
                raise RoundsStopped("stopped after the last checkpointed round")
            self.step = step
            return inner(*args, **kwargs)

        return call

    def describe(self) -> str:
        """The guard's state for the driver's log: why a driver stops is never a guess."""
        handler = signal.getsignal(signal.SIGTERM)
        installed = getattr(handler, "__qualname__", "").startswith("RoundGuard.")
        return (
            f"SIGTERM handler {'installed' if installed else f'NOT installed ({handler!r})'}, "
            f"stop {'requested' if self.stop.is_set() else 'not requested'}"
            + (f", step {self.step!r}" if self.step else "")
        )


def log(message: str) -> None:
    """A line of the driver's own log (the pod's stderr)."""
    print(f"prefloop driver: {message}", file=sys.stderr, flush=True)


def checkpoint_progress(run_dir: Path) -> dict[str, Any] | None:
    """Round, annotations, model version and held-out accuracy of the latest checkpoint."""
    pointer = run_dir / "checkpoints" / "LATEST"
    try:
        name = pointer.read_text().strip()
        state = json.loads((run_dir / "checkpoints" / name / "state.json").read_text())
    except (OSError, ValueError):
        return None  # none yet, or pruned between the two reads: the next tick sees the new one
    metrics = state.get("metrics") or [{}]
    return {
        "round": int(state.get("round", 0)),
        "annotations_used": int(state.get("annotations_used", 0)),
        "reward_model_version": int(state.get("model_version", 0)),
        "heldout_accuracy": metrics[-1].get("heldout_accuracy"),
    }


class ProgressReporter:
    """Patches the progress ConfigMap from the checkpoints and the guard's step, with a
    heartbeat; never fails the run (a lost report shows as a stale heartbeat)."""

    def __init__(self, target: str | None, guard: RoundGuard, heartbeat_seconds: float) -> None:
        self.namespace, _, self.name = (target or "").rpartition("/")
        self.run_dir: Path | None = None
        """Set once the manifest is read (the first heartbeat goes out before that)."""
        self.guard = guard
        self.heartbeat_seconds = heartbeat_seconds
        self._kube: Any = None
        self._sent: dict[str, str] = {}
        self._sent_at = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def start(self) -> None:
        if not self.name:
            return
        from prefloop_operator.kube import Kube, load_config

        load_config()
        self._kube = Kube(user_agent="prefloop-driver")
        self.report(Progress(state="starting", heartbeat=now_rfc3339()))
        self._thread.start()

    def current(self, state: str = "running", **extra: Any) -> Progress:
        """The progress as the checkpoints and the guard tell it now."""
        ckpt = (checkpoint_progress(self.run_dir) if self.run_dir else None) or {}
        return Progress(
            state=state,  # type: ignore[arg-type]
            round_phase=self.guard.step if state == "running" else "",
            heartbeat=now_rfc3339(),
            **ckpt,
            **extra,
        )

    def report(self, progress: Progress, force: bool = True) -> None:
        """Patch the ConfigMap (when something changed, or a heartbeat is due). Until the run
        directory is known only the state and the heartbeat are sent: the counters of an
        earlier driver stay (a restarted driver must not show the run back at round 0)."""
        import time

        data = progress.to_data()
        if self.run_dir is None:
            data = {k: data[k] for k in ("state", "heartbeat", "error")}
        due = time.monotonic() - self._sent_at >= self.heartbeat_seconds
        same = {k: v for k, v in data.items() if k != "heartbeat"} == {
            k: v for k, v in self._sent.items() if k != "heartbeat"
        }
        if self._kube is None or (same and not due and not force):
            return
        try:
            self._kube.patch("ConfigMap", self.namespace, self.name, {"data": data})
        except Exception as exc:  # the run goes on; the operator sees a stale heartbeat
            log(f"progress report failed: {exc}")
            return
        self._sent, self._sent_at = data, time.monotonic()

    def _loop(self) -> None:
        while not self._done.wait(0.25):
            self.report(self.current(), force=False)

    def finish(self, state: str, **extra: Any) -> None:
        """Stop the thread and send the last report."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.report(self.current(state, **extra))


def add_driver_parser(sub: Any) -> argparse.ArgumentParser:
    """``prefloop driver`` and its arguments."""
    p: argparse.ArgumentParser = sub.add_parser(
        "driver",
        help="run a cluster run's rounds (what the operator's driver Job runs)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("manifest", type=Path, help="ActiveRun YAML (the run's manifest ConfigMap)")
    p.add_argument("--connect", required=True, metavar="ROLE=HOST:PORT,...")
    p.add_argument(
        "--progress-configmap", metavar="NAMESPACE/NAME", help="the ConfigMap to report to"
    )
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: none)")
    p.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=float(os.environ.get("PREFLOOP_DRIVER_HEARTBEAT_SECONDS", "10")),
        help="progress heartbeat period (default 10, or $PREFLOOP_DRIVER_HEARTBEAT_SECONDS)",
    )
    p.add_argument(
        "--retry-timeout-seconds",
        type=float,
        default=600.0,
        help="how long a call keeps retrying a service that is down or restarting",
    )
    return p


def dataset_location(run: Any, run_dir: Path) -> str:
    """Where the dataset is for people: the URI, or the PVC path of the run directory."""
    from prefloop.spec_cluster import DATA_MOUNT_PATH

    if run.spec.output.uri:
        return str(run.spec.output.uri)
    storage = run.spec.storage
    if storage is None:
        return f"{DATA_MOUNT_PATH}/{run_dir} (emptyDir: lost with the pod)"
    sub = f"{storage.sub_path.strip('/')}/" if storage.sub_path else ""
    return f"pvc://{storage.claim_name}/{sub}{run_dir}"


def run_driver(args: argparse.Namespace) -> int:
    """Run the rounds; return the exit status (see the module doc).

    The SIGTERM handler and the first heartbeat come before the engine's imports (torch,
    scipy, the acquisition registry: seconds, tens of seconds on a loaded node): a pod
    suspended or evicted while it starts still stops cleanly (143), and the operator sees it
    alive instead of replacing it as lost (``roles.driver.heartbeatTimeoutSeconds``).
    """
    guard = RoundGuard()
    guard.install_signal_handler()
    log(f"pid {os.getpid()}, {guard.describe()}")
    reporter = ProgressReporter(args.progress_configmap, guard, args.heartbeat_seconds)
    reporter.start()
    from prefloop.cli import report_error
    from prefloop.engine.runner import run_dir_for
    from prefloop.spec import load_activerun

    try:
        run = load_activerun(args.manifest)
    except Exception as exc:
        reporter.finish("failed", error=str(exc)[:2000])
        return report_error(exc)
    run_dir = reporter.run_dir = run_dir_for(run)
    try:
        result = _rounds(run, run_dir, args, guard)
        if run.spec.output.uri:
            from prefloop.data.output_uri import copy_run_outputs

            copy_run_outputs(run_dir, run.spec.output.uri)
    except RoundsStopped:
        log(f"stopped before a new round; {guard.describe()}")
        reporter.finish("stopped")
        return STOPPED_EXIT_CODE
    except BaseException as exc:
        code = report_error(exc) if isinstance(exc, Exception) else 1
        reporter.finish("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        if not isinstance(exc, Exception):
            traceback.print_exception(exc)
        return code
    reporter.finish(
        "finished",
        stop_reason=result.state.stop_reason,
        dataset_location=dataset_location(run, run_dir),
    )
    return 0


def _rounds(run: Any, run_dir: Path, args: argparse.Namespace, guard: RoundGuard) -> Any:
    """The engine against the role services, resuming from the volume's last checkpoint."""
    from prefloop.engine.runner import execute
    from prefloop.rpc.clients import ClientConfig, connect_roles, parse_connect

    resume = (run_dir / "checkpoints" / "LATEST").exists()
    done = checkpoint_progress(run_dir) if resume else None
    log(
        f"run directory {run_dir}: "
        + (f"resuming after round {done['round']}" if done else "no checkpoint, a fresh run")
        + f"; {guard.describe()}"
    )
    if guard.stop.is_set():  # SIGTERM while starting: no round to finish, nothing to connect
        raise RoundsStopped("stopped before the first round")
    config = ClientConfig(retry_timeout_seconds=args.retry_timeout_seconds)
    metrics = None
    if args.metrics_port:
        from prefloop.engine.metrics import DriverMetrics

        metrics = DriverMetrics(run)
        metrics.serve(args.metrics_port, "0.0.0.0")
    connected = connect_roles(run, parse_connect(args.connect), config)
    guard.wrap(connected.roles)
    try:
        return execute(
            run,
            manifest_dir=args.manifest.resolve().parent,
            resume=resume,
            roles=connected.roles,
            publisher=connected.publisher,
            wait_ready=connected.wait_until_serving,
            metrics=metrics,
        )
    finally:
        connected.close()
        if metrics is not None:
            metrics.close()
