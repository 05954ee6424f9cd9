"""``prefloop serve <role> RUN.yaml``: build one role's servicer from the manifest and run it.

Every role is built from the same ActiveRun (seed, models, judge, head), so five processes
started from one manifest agree with each other and with the embedded run. With ``--kafka
HOST:PORT`` the service also joins the run's data plane (see :mod:`prefloop.rpc.dataplane`).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from prefloop.rpc.common import ServiceContext
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import Registrar, ServerConfig, StartupError, serve_forever
from prefloop.spec import ActiveRun

ROLES = ("generation", "reward", "acquisition", "judge", "trainer")


def build_registrar(role: str, ctx: ServiceContext) -> Registrar:
    """The servicer of ``role`` for the run in ``ctx``, as a server registrar."""
    if role == "acquisition":
        from prefloop.rpc import acquisition_service

        return acquisition_service.register(
            acquisition_service.AcquisitionServicer(ctx.metrics, ctx.run_name)
        )
    if role == "judge":
        from prefloop.rpc import judge_service

        return judge_service.register(judge_service.JudgeServicer(ctx))
    if role == "generation":
        from prefloop.rpc import generation_service

        return generation_service.register(generation_service.GenerationServicer(ctx))
    if role == "reward":
        from prefloop.rpc import reward_service

        return reward_service.register(reward_service.RewardServicer(ctx))
    if role == "trainer":
        from prefloop.rpc import trainer_service

        return trainer_service.register(trainer_service.TrainerServicer(ctx))
    raise ValueError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")


def serve_role(
    role: str,
    run: ActiveRun,
    config: ServerConfig,
    *,
    manifest_dir: Path | None,
    state_dir: Path,
    checkpoint_dir: Path,
    kafka: str | None = None,
    ui_host: str = "127.0.0.1",
    ui_port: int | None = None,
) -> None:
    """Build the role and serve until SIGTERM (graceful) or SIGINT.

    A human judge (``judge.kind: human``) also serves its labelling page on ``ui_host:ui_port``
    (:mod:`prefloop.rpc.human_judge_service`).

    ``kafka`` (HOST:PORT): the bootstrap server(s) of the run's data plane; the run's topics are
    created if missing, so the role's consumers can follow them from the start. A service that
    cannot start (port in use, state held by another process) exits with status 2 and one line
    on stderr saying what is in the way.
    """
    metrics = ServiceMetrics()
    bus = None
    if kafka:
        from prefloop.bus.kafka_bus import KafkaBus
        from prefloop.bus.publisher import RunPublisher

        bus = KafkaBus(kafka, client_id=f"prefloop-{role}")
        RunPublisher(bus, run.metadata.name).ensure_topics()
    ctx = ServiceContext(run, manifest_dir, state_dir, checkpoint_dir, metrics, bus)
    state_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)

    def ready(port: int) -> None:
        print(f"prefloop serve {role}: run {run.metadata.name} on port {port}", file=sys.stderr)
        sys.stderr.flush()

    page = None
    try:
        if role == "judge" and run.spec.judge.kind == "human":
            from prefloop.rpc.human_judge_service import human_judge_service

            registrar, page, _ = human_judge_service(ctx, ui_host, ui_port)
            print(f"prefloop serve judge: labelling page on {page.url}/", file=sys.stderr)
        else:
            registrar = build_registrar(role, ctx)
        asyncio.run(serve_forever(config, [registrar], metrics, on_ready=ready))
    except StartupError as e:
        print(f"prefloop serve {role}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if page is not None:
            page.stop()
        if bus is not None:
            bus.close()
