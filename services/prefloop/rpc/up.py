"""``prefloop up RUN.yaml``: the five role services of a run (and a broker) on this machine.

One command instead of five terminals: ``prefloop up`` starts ``prefloop serve ROLE`` for
every role as a child process, waits until each one's health check says SERVING (a line per
role), prints the ``--connect`` string for ``prefloop run``, and keeps them running until
Ctrl-C or SIGTERM, when it stops them all (SIGTERM, then SIGKILL after the grace period). The
children run in their own process groups and die with this process even if it is killed
(:mod:`prefloop.children`), so no orphan is left.

Where things go (``--state-dir``, default ``state``):

- ``state/<run>/<role>/``: each role's durable state (the judge's verdict log, the trainer's
  versions); ``state/<run>/checkpoints/``: the trainer -> reward hand-off;
- ``state/<run>/features/``: one feature cache for the reward and trainer services (unless the
  manifest sets ``embedder.cacheDir``). Because a cache directory takes one writer at a time,
  ``up`` embeds the whole prompt pool into it before the services start (precomputed
  responses); with generated responses each service keeps its own cache
  (``features-reward``, ``features-trainer``);
- ``state/<run>/logs/<role>.log``: the services' output; ``state/broker/``: the broker's
  topics with ``--broker`` (:mod:`prefloop.bus.broker`).

The run's outputs (dataset, metrics, checkpoints) are written by the driver, ``prefloop run
RUN.yaml --connect ...``, to its run directory (``spec.output.dir``, ``runs/<run>``) relative
to where it is started.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefloop.children import log_tail, spawn, stop_all
from prefloop.spec import ActiveRun

ROLE_ORDER = ("generation", "reward", "acquisition", "judge", "trainer")


class UpError(RuntimeError):
    """A service or the broker could not be started (the message says which and why)."""


@dataclass
class RoleChild:
    """One ``prefloop serve`` child."""

    role: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]
    cmd: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restart(self) -> None:
        """Start the same command again (after the process died or was killed)."""
        self.proc = spawn(self.cmd, self.log)


@dataclass
class Stack:
    """The running services (and broker) of one run."""

    children: dict[str, RoleChild] = field(default_factory=dict)
    broker: Any = None
    kafka: str | None = None

    def connect_string(self) -> str:
        """``generation=h:p,...[,kafka=h:p]`` for ``prefloop run --connect``."""
        parts = [f"{r}={c.address}" for r, c in self.children.items()]
        if self.kafka:
            parts.append(f"kafka={self.kafka}")
        return ",".join(parts)

    def stop(self, grace_seconds: float) -> None:
        """Stop the services, then the broker (the services flush to it on the way out)."""
        stop_all([c.proc for c in self.children.values()], grace_seconds)
        if self.broker is not None:
            self.broker.stop()


def role_ports(port_base: int) -> dict[str, int]:
    """``port_base`` + 0..4 per role; ``port_base`` 0 picks five free ports."""
    from prefloop.bus.tansu import free_port

    if port_base == 0:
        return {role: free_port() for role in ROLE_ORDER}
    return {role: port_base + i for i, role in enumerate(ROLE_ORDER)}


def cache_dirs(run: ActiveRun, base: Path) -> tuple[dict[str, Path], bool]:
    """The feature cache of the reward and trainer services, and whether it is shared."""
    configured = run.spec.reward_model.embedder.cache_dir
    if configured:
        return {"reward": Path(configured), "trainer": Path(configured)}, True
    if run.spec.responses.source == "precomputed":
        return {"reward": base / "features", "trainer": base / "features"}, True
    return {"reward": base / "features-reward", "trainer": base / "features-trainer"}, False


def warm_feature_cache(manifest: Path, overrides: list[str], cache_dir: Path) -> int:
    """Embed every (prompt, response) of the pool and the held-out set into ``cache_dir``.

    Why: the reward and trainer services share the cache but a cache directory takes one
    writer; warmed before they start, both only read it. Returns the rows newly computed.
    """
    from prefloop.engine.build import build_reward_model
    from prefloop.engine.runner import load_pool
    from prefloop.spec import load_activerun

    run = load_activerun(manifest, [*overrides, cache_override(cache_dir)])
    manifest_dir = manifest.resolve().parent
    pool, heldout = load_pool(run, manifest_dir)
    model = build_reward_model(run, cache_dir.parent, manifest_dir)
    prompts, responses = [], []
    for item in [*pool, *heldout]:
        text = item.prompt_text()
        for r in item.responses:
            prompts.append(text)
            responses.append(r.text)
    before = model.cache.rows_computed
    model.cache.get_or_compute(prompts, responses, model.embedder)
    return int(model.cache.rows_computed - before)


def cache_override(cache_dir: Path) -> str:
    """The ``--set`` that points a run's feature cache at ``cache_dir``."""
    return f"spec.rewardModel.embedder.cacheDir={cache_dir}"


def serve_command(
    role: str,
    args: argparse.Namespace,
    port: int,
    base: Path,
    cache: Path | None,
    kafka: str | None,
    *,
    run: ActiveRun | None = None,
) -> list[str]:
    """The ``prefloop serve`` command line of one role (a human judge's with its page port)."""
    cmd = [
        sys.executable, "-m", "prefloop.cli", "serve", role, str(args.manifest),
        "--host", args.host, "--port", str(port),
        "--state-dir", str(base / role), "--checkpoint-dir", str(base / "checkpoints"),
        "--grace", str(args.grace),
    ]  # fmt: skip
    if args.metrics_port_base:
        cmd += ["--metrics-port", str(args.metrics_port_base + ROLE_ORDER.index(role))]
    for override in args.overrides:
        cmd += ["--set", override]
    if cache is not None:
        cmd += ["--set", cache_override(cache)]
    if kafka and role in ("reward", "judge", "trainer"):
        cmd += ["--kafka", kafka]
    if role == "judge" and run is not None and run.spec.judge.kind == "human":
        cmd += ["--ui-port", str(args.ui_port), "--ui-host", args.host]
    return cmd


def wait_serving(stack: Stack, timeout_seconds: float, say: Any, stopping: list[int]) -> None:
    """Wait until every child's health check says SERVING; fail fast if one exits."""
    import grpc

    from prefloop.rpc.clients import ClientConfig
    from prefloop.rpc.retry import check_serving

    config = ClientConfig()
    for role, child in stack.children.items():
        start = time.monotonic()
        with grpc.insecure_channel(child.address) as channel:
            while True:
                if stopping:
                    raise UpError("interrupted before every service was ready")
                if child.proc.poll() is not None:
                    raise UpError(
                        f"{role} service exited with status {child.proc.returncode} before it "
                        f"was ready; the end of {child.log}:\n{log_tail(child.log)}"
                    )
                try:
                    check_serving(
                        channel,
                        {"timeout": 1.0, "metadata": config.metadata(), "wait_for_ready": True},
                    )
                    break
                except grpc.RpcError:
                    if time.monotonic() - start > timeout_seconds:
                        raise UpError(
                            f"{role} service at {child.address} was not SERVING after "
                            f"{timeout_seconds:.0f}s; see {child.log}"
                        ) from None
        say(f"{role:<11} {child.address:<21} SERVING ({time.monotonic() - start:.1f}s)")


def bring_up(args: argparse.Namespace, run: ActiveRun, say: Any, stopping: list[int]) -> Stack:
    """Start the broker (if asked), warm the shared cache, start and wait for the services."""
    base = args.state_dir / run.metadata.name
    stack = Stack(kafka=args.kafka)
    try:
        if args.broker:
            from prefloop.bus.broker import DurableBroker

            stack.broker = DurableBroker(
                args.state_dir / "broker", port=args.broker_port, log_dir=base / "logs"
            ).start()
            stack.kafka = stack.broker.bootstrap
            say(f"broker      {stack.kafka:<21} up (storage {args.state_dir / 'broker'})")
        caches, shared = cache_dirs(run, base)
        if shared and run.spec.responses.source == "precomputed":
            say(f"feature cache {caches['reward']}: embedding the pool once ...")
            computed = warm_feature_cache(args.manifest, args.overrides, caches["reward"])
            say(f"feature cache ready ({computed} new rows)")
        for role, port in role_ports(args.port_base).items():
            log = base / "logs" / f"{role}.log"
            cmd = serve_command(role, args, port, base, caches.get(role), stack.kafka, run=run)
            stack.children[role] = RoleChild(role, port, log, spawn(cmd, log), cmd)
        wait_serving(stack, args.start_timeout_seconds, say, stopping)
    except BaseException:
        stack.stop(5.0)
        raise
    return stack


def add_up_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``prefloop up`` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "up",
        help="start the five role services of a run (and a broker) until Ctrl-C",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("manifest", type=Path, help="ActiveRun YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    p.add_argument("--broker", action="store_true", help="also start a durable local broker")
    p.add_argument("--broker-port", type=int, default=9092, help="with --broker (default 9092)")
    p.add_argument("--kafka", metavar="HOST:PORT", help="use this broker instead of --broker")
    p.add_argument("--host", default="127.0.0.1", help="interface the services bind")
    p.add_argument("--port-base", type=int, default=7001, help="ports base..base+4 (0: free ports)")
    p.add_argument("--metrics-port-base", type=int, default=0, help="Prometheus ports (0: none)")
    p.add_argument("--state-dir", type=Path, default=Path("state"), help="default: ./state")
    p.add_argument("--grace", type=float, default=10.0, help="seconds calls get on stop")
    p.add_argument(
        "--ui-port",
        type=int,
        default=8080,
        help="judge.kind: human: port of the judge service's labelling page (default 8080)",
    )
    p.add_argument(
        "--start-timeout-seconds",
        type=float,
        default=600.0,
        help="how long a service may take to become SERVING (default 600)",
    )
    return p


def run_up(args: argparse.Namespace) -> int:
    """Run ``prefloop up``: 0 after Ctrl-C / SIGTERM, 1 if something could not start or died."""
    from prefloop.spec import load_activerun

    if args.broker and args.kafka:
        print("prefloop: error: give --broker or --kafka, not both", file=sys.stderr)
        return 2
    run = load_activerun(args.manifest, args.overrides)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        stack = bring_up(args, run, say, stopping)
    except Exception as exc:  # BrokerError, UpError, a bad cache: one line, exit 1
        print(f"prefloop: error: {exc}", file=sys.stderr)
        return 1
    base = args.state_dir / run.metadata.name
    sets = "".join(f" --set {o}" for o in args.overrides)
    print(stack.connect_string(), flush=True)
    say(
        f"all services SERVING. In another terminal:\n"
        f"  prefloop run {args.manifest}{sets} --connect {stack.connect_string()}\n"
        f"state: {base}/ (logs: {base / 'logs'}); the run's outputs go to "
        f"{run.spec.output.dir.replace('{name}', run.metadata.name)}/ where you run it. "
        "Stop with Ctrl-C."
    )
    if run.spec.judge.kind == "human":
        say(f"labelling page (judge.kind: human): http://{args.host}:{args.ui_port}/")
    status = 0
    try:
        while not stopping:
            dead = [c for c in stack.children.values() if c.proc.poll() is not None]
            if dead:
                c = dead[0]
                say(
                    f"prefloop: error: {c.role} service exited with status "
                    f"{c.proc.returncode}; the end of {c.log}:\n{log_tail(c.log)}"
                )
                status = 1
                break
            time.sleep(0.2)
    finally:
        say("stopping the services ...")
        stack.stop(args.grace + 5.0)
        say("stopped")
    return status
