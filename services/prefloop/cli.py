"""``prefloop``: the command line.

- ``prefloop run RUN.yaml [--resume] [--output DIR] [--set spec.seed=3 ...]`` runs an ActiveRun
  embedded (all roles in one process, no server, no GPU, no network); with
  ``--connect generation=h:p,reward=h:p,acquisition=h:p,judge=h:p,trainer=h:p[,kafka=h:p]`` the
  same round engine drives five role services over gRPC instead (with kafka, through the run's
  Kafka topics too).
- ``prefloop serve ROLE RUN.yaml --port P --metrics-port M`` runs one role as a gRPC service
  (generation, reward, acquisition, judge or trainer), built from the same manifest.
- ``prefloop validate RUN.yaml`` checks a manifest and prints it with every default filled in.
- ``prefloop methods`` lists the acquisition rules with their parameters and papers.
- ``prefloop bench label-efficiency|speed ...`` measures methods (see docs/benchmarks.md).
- ``prefloop export --from-kafka HOST:PORT --run NAME --out DIR`` rebuilds a run's dataset from
  its Kafka topics alone.
- ``prefloop crd`` prints the ActiveRun CustomResourceDefinition generated from the typed spec.

Errors in the manifest or the data end the command with exit status 2 and a message naming the
field, file and line at fault.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from prefloop import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prefloop", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"prefloop {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an ActiveRun manifest embedded")
    run.add_argument("manifest", type=Path, help="ActiveRun YAML file")
    run.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    run.add_argument("--output", help="run directory (default: spec.output.dir)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a manifest field, e.g. --set spec.acquisition.method=dts (repeatable)",
    )
    run.add_argument(
        "--connect",
        metavar="ROLE=HOST:PORT,...",
        help="drive role services over gRPC: generation=h:p,reward=h:p,acquisition=h:p,"
        "judge=h:p,trainer=h:p[,kafka=h:p] (kafka: publish the run's records to its topics; "
        "the trainer then reads the labelled pairs from Kafka)",
    )
    run.add_argument("--tls-ca", type=Path, help="with --connect: CA / self-signed cert to trust")
    run.add_argument("--tls-server-name", help="with --connect: name to check in the certificate")
    run.add_argument("--auth-token-file", type=Path, help="with --connect: bearer token file")
    run.add_argument(
        "--retry-timeout-seconds",
        type=float,
        default=600.0,
        metavar="S",
        help="with --connect: how long a call keeps retrying a service that is down or "
        "restarting before the run stops (exit 1; resume with --resume). Default: 600",
    )

    from prefloop.rpc.serve import ROLES

    srv = sub.add_parser("serve", help="run one role of a run as a gRPC service")
    srv.add_argument("role", choices=ROLES)
    srv.add_argument("manifest", type=Path, help="ActiveRun YAML file (the same for every role)")
    srv.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    srv.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 for all)")
    srv.add_argument("--port", type=int, required=True, help="gRPC port (0: any free port)")
    srv.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: none)")
    srv.add_argument("--state-dir", type=Path, help="durable state (default: state/<run>/<role>)")
    srv.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="shared trainer->reward hand-off (default: state/<run>/checkpoints)",
    )
    srv.add_argument("--tls-cert", type=Path, help="PEM certificate (with --tls-key)")
    srv.add_argument("--tls-key", type=Path, help="PEM private key (with --tls-cert)")
    srv.add_argument("--auth-token-file", type=Path, help="require this bearer token")
    srv.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        help="the run's data plane: the judge publishes verdicts, the trainer reads pairs and "
        "announces checkpoints, the reward service follows checkpoints (use with kafka= in "
        "prefloop run --connect)",
    )
    srv.add_argument("--max-message-mb", type=float, default=64.0, help="largest message (MiB)")
    srv.add_argument(
        "--grace", type=float, default=30.0, help="seconds in-flight calls get on SIGTERM"
    )

    val = sub.add_parser("validate", help="validate a manifest and print it with defaults")
    val.add_argument("manifest", type=Path)
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")

    from prefloop.bus.export import add_export_parser

    add_export_parser(sub)
    from prefloop.bus.broker import add_broker_parser
    from prefloop.rpc.up import add_up_parser

    add_up_parser(sub)
    add_broker_parser(sub)
    sub.add_parser("methods", help="list the acquisition rules")
    sub.add_parser("crd", help="print the ActiveRun CRD generated from the spec")

    from prefloop.bench.cli import add_bench_parser

    add_bench_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``prefloop`` command."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    from prefloop.acquisition.base import AcquisitionError
    from prefloop.data.errors import DataError
    from prefloop.engine.round_engine import ResumeError
    from prefloop.rpc.clients import ConnectError
    from prefloop.spec import SpecError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "validate":
            from prefloop.spec import load_activerun

            print(load_activerun(args.manifest, args.overrides).to_yaml(), end="")
            return 0
        if args.command == "up":
            from prefloop.rpc.up import run_up

            return run_up(args)
        if args.command == "broker":
            from prefloop.bus.broker import run_broker

            return run_broker(args)
        if args.command == "export":
            from prefloop.bus.export import run_export

            return run_export(args)
        if args.command == "methods":
            return _methods()
        if args.command == "bench":
            from prefloop.bench.cli import run_bench

            return run_bench(args)
        if args.command == "crd":
            import yaml

            from prefloop.crd import activerun_crd

            print(yaml.safe_dump(activerun_crd(), sort_keys=False), end="")
            return 0
    except (SpecError, DataError, ResumeError, AcquisitionError, ConnectError) as e:
        print(f"prefloop: error: {e}", file=sys.stderr)
        return 2
    return 1


def _run(args: argparse.Namespace) -> int:
    from prefloop.engine.runner import execute
    from prefloop.spec import load_activerun

    run = load_activerun(args.manifest, args.overrides)
    if not args.connect:
        execute(
            run,
            manifest_dir=args.manifest.resolve().parent,
            output=args.output,
            resume=args.resume,
        )
        return 0
    from prefloop.rpc.clients import ClientConfig, connect_roles, parse_connect

    token = args.auth_token_file.read_text().strip() if args.auth_token_file else None
    from prefloop.bus.base import BusError
    from prefloop.rpc.retry import RoleCallError

    config = ClientConfig(
        tls_ca=args.tls_ca,
        tls_server_name=args.tls_server_name,
        auth_token=token,
        retry_timeout_seconds=args.retry_timeout_seconds,
    )
    try:
        connected = connect_roles(run, parse_connect(args.connect), config)
        try:
            execute(
                run,
                manifest_dir=args.manifest.resolve().parent,
                output=args.output,
                resume=args.resume,
                roles=connected.roles,
                publisher=connected.publisher,
                wait_ready=connected.wait_until_serving,
            )
        finally:
            connected.close()
    except (RoleCallError, BusError) as e:  # a runtime failure: one line, exit 1
        print(f"prefloop: error: {e}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    from prefloop.rpc.serve import serve_role
    from prefloop.rpc.server import ServerConfig
    from prefloop.spec import load_activerun

    run = load_activerun(args.manifest, args.overrides)
    base = Path("state") / run.metadata.name
    config = ServerConfig(
        port=args.port,
        host=args.host,
        metrics_port=args.metrics_port,
        max_message_bytes=int(args.max_message_mb * 1024 * 1024),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        auth_token_file=args.auth_token_file,
        grace_seconds=args.grace,
    )
    serve_role(
        args.role,
        run,
        config,
        manifest_dir=args.manifest.resolve().parent,
        state_dir=args.state_dir or base / args.role,
        checkpoint_dir=args.checkpoint_dir or base / "checkpoints",
        kafka=args.kafka,
    )
    return 0


def _methods() -> int:
    from prefloop.acquisition.registry import get_rule, rule_names

    for name in rule_names():
        info = get_rule(name)
        params = ", ".join(f"{k}={v!r}" for k, v in info.parameters().items())
        print(f"{name:16s} [{info.kind}] {info.summary}")
        print(f"{'':16s}   params: {params or '-'}; paper: {info.paper}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
