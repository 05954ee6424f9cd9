"""``prefloop operator``: run the kopf operator that reconciles ActiveRuns.

``prefloop operator [--namespace NS ...|--all-namespaces] [--peering NAME [--priority N]]
[--standalone] [--liveness-port 8080]`` runs :mod:`prefloop_operator.handlers` with kopf: it
watches ActiveRuns (all namespaces unless ``--namespace`` is given), and with ``--peering``
replicas of the operator that share the peering object pause all but the one with the highest
priority (a random one when ``--priority`` is not given, so two replicas never tie), so two
replicas never reconcile the same run. kopf's liveness endpoint answers on
``http://0.0.0.0:PORT/healthz`` (``--liveness-port 0``: none).

The operator's environment sets what every run inherits: ``PREFLOOP_IMAGE`` (pods' image),
``PREFLOOP_GPU_IMAGE`` (roles with a GPU), ``PREFLOOP_IMAGE_PULL_POLICY``,
``PREFLOOP_KAFKA_BOOTSTRAP`` (the broker of runs without ``spec.kafka``),
``PREFLOOP_RECONCILE_SECONDS`` (the level-based reconcile period, default 10) and
``PREFLOOP_LOG_LEVEL``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from typing import Any


def add_operator_parser(sub: Any) -> argparse.ArgumentParser:
    """``prefloop operator`` and its arguments."""
    p: argparse.ArgumentParser = sub.add_parser(
        "operator",
        help="run the Kubernetes operator that reconciles ActiveRuns",
        description=__doc__.split("\n\n")[0],
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--namespace",
        "-n",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="watch ActiveRuns in this namespace (repeatable)",
    )
    where.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (default)"
    )
    peers = p.add_mutually_exclusive_group()
    peers.add_argument("--peering", metavar="NAME", help="the kopf peering object to join")
    peers.add_argument("--standalone", action="store_true", help="no peering (one replica only)")
    p.add_argument("--priority", type=int, help="peering priority (default: random)")
    p.add_argument("--liveness-port", type=int, default=8080, help="kopf /healthz port (0: none)")
    p.add_argument("--verbose", action="store_true", help="debug logging")
    return p


def run_operator(args: argparse.Namespace) -> int:
    """Run the operator until SIGTERM / SIGINT."""
    import kopf

    import prefloop_operator.handlers  # noqa: F401  (registers the handlers)

    level = "DEBUG" if args.verbose else os.environ.get("PREFLOOP_LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the admin client's chatter
    if not args.verbose:  # "Timer 'on_timer' succeeded" per run every few seconds; our own
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # log says what happened
    namespaces = list(args.namespaces)
    os.environ["PREFLOOP_OPERATOR_NAMESPACES"] = ",".join(namespaces)
    priority = args.priority if args.priority is not None else random.randint(1, 2**31 - 1)
    kopf.run(
        standalone=bool(args.standalone) or args.peering is None,
        peering_name=args.peering,
        priority=priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=(
            f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
        ),
    )
    return 0


def add_driver_parser(sub: Any) -> argparse.ArgumentParser:
    """``prefloop driver`` (see :mod:`prefloop_operator.driver`)."""
    from prefloop_operator.driver import add_driver_parser as add

    return add(sub)


def run_driver(args: argparse.Namespace) -> int:
    """Run a cluster run's rounds (see :mod:`prefloop_operator.driver`)."""
    from prefloop_operator.driver import run_driver as run

    return run(args)
