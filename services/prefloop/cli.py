"""``prefloop``: the command line.

- ``prefloop run RUN.yaml [--resume] [--output DIR] [--set spec.seed=3 ...]`` runs an ActiveRun
  embedded (all roles in one process, no server, no GPU, no network).
- ``prefloop validate RUN.yaml`` checks a manifest and prints it with every default filled in.
- ``prefloop methods`` lists the acquisition rules with their parameters and papers.
- ``prefloop bench label-efficiency|speed ...`` measures methods (see docs/benchmarks.md).
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

    val = sub.add_parser("validate", help="validate a manifest and print it with defaults")
    val.add_argument("manifest", type=Path)
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")

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
    from prefloop.spec import SpecError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "validate":
            from prefloop.spec import load_activerun

            print(load_activerun(args.manifest, args.overrides).to_yaml(), end="")
            return 0
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
    except (SpecError, DataError, ResumeError, AcquisitionError) as e:
        print(f"prefloop: error: {e}", file=sys.stderr)
        return 2
    return 1


def _run(args: argparse.Namespace) -> int:
    from prefloop.engine.runner import execute
    from prefloop.spec import load_activerun

    run = load_activerun(args.manifest, args.overrides)
    execute(
        run,
        manifest_dir=args.manifest.resolve().parent,
        output=args.output,
        resume=args.resume,
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
