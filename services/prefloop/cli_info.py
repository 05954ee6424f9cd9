"""The read-only commands of ``prefloop``: ``methods``, ``validate`` and ``status``.

Each prints human text by default and, with ``-o json`` / ``-o yaml``, one document on stdout
that tools read (messages for people go to stderr either way). ``validate`` with ``-o json``
prints a document even when the manifest or data is invalid (``"valid": false`` with the errors)
and then exits 2 like the text form.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from prefloop.data.errors import DataError

EXIT_OK = 0


def emit(data: Any, output_format: str) -> None:
    """Print ``data`` as JSON or YAML on stdout (tuples become lists, keys keep their order).

    Why: one place decides how machine-readable output looks, for every command.
    """
    plain = json.loads(json.dumps(data, default=str))
    if output_format == "json":
        print(json.dumps(plain, indent=2))
    elif output_format == "yaml":
        print(yaml.safe_dump(plain, sort_keys=False), end="")
    else:
        raise ValueError(f"unknown output format {output_format!r}")


def methods_command(output_format: str) -> int:
    """``prefloop methods``: every acquisition rule, its kind, needs, parameters and paper."""
    from prefloop.acquisition.registry import get_rule, rule_names

    rules = [get_rule(name) for name in rule_names()]
    if output_format != "text":
        emit(
            [
                {
                    "name": info.name,
                    "kind": info.kind,
                    "needs": sorted(info.needs),
                    "parameters": info.parameters(),
                    "paper": info.paper,
                    "summary": info.summary,
                }
                for info in rules
            ],
            output_format,
        )
        return EXIT_OK
    for info in rules:
        params = ", ".join(f"{k}={v!r}" for k, v in info.parameters().items())
        print(f"{info.name:16s} [{info.kind}] {info.summary}")
        print(f"{'':16s}   params: {params or '-'}; paper: {info.paper}")
    return EXIT_OK


def validate_command(
    manifest: Path, overrides: list[str], output_format: str, mode: str = "run"
) -> int:
    """``prefloop validate``: the manifest, then its data; warnings for unreachable budgets.

    Why: everything ``prefloop run`` would reject before its first round is found here, without
    building a model; with ``-o json`` a tool gets the errors as data. ``mode`` (``--for``) says
    which command will run it: embedded ``run`` refuses a human judge, ``judge-ui`` checks the
    annotators' tokens, ``services`` (a driver of role services) neither.
    """
    from prefloop.engine.preflight import check_data, run_dir_for
    from prefloop.spec import SpecError, load_activerun
    from prefloop.status import holds_run

    try:
        run = load_activerun(manifest, overrides)
        if run.spec.judge.kind == "human":
            from prefloop.judge.human.judge import check_human_run

            check_human_run(run, mode, manifest.resolve().parent)
        data = check_data(run, manifest.resolve().parent)
    except (SpecError, DataError) as e:
        if output_format != "text":
            emit(
                {"valid": False, "manifest": str(manifest), "errors": [_error_entry(e)]},
                output_format,
            )
        raise
    warnings = list(data.warnings)
    run_dir = run_dir_for(run)
    if holds_run(run_dir):
        warnings.append(
            f"{run_dir} already holds a run: `prefloop run` refuses to start over it without "
            "--resume (or pass another --output)"
        )
    if output_format != "text":
        emit(
            {
                "valid": True,
                "manifest": run.model_dump(mode="json", by_alias=True),
                "data": data.to_dict(),
                "warnings": warnings,
            },
            output_format,
        )
        return EXIT_OK
    print(run.to_yaml(), end="")
    for warning in warnings:
        print(f"prefloop: warning: {warning}", file=sys.stderr)
    print(
        f"prefloop: {manifest} is valid; {data.path}: {len(data.items)} prompts "
        f"({data.pool_size} to select from, {data.heldout_size} held out), at most "
        f"{data.reachable_annotations} pairs can be selected",
        file=sys.stderr,
    )
    return EXIT_OK


def _error_entry(e: Exception) -> dict[str, Any]:
    if isinstance(e, DataError):
        return {
            "source": "data",
            "message": str(e),
            "problems": [{"where": p.where, "message": p.message} for p in e.problems],
        }
    return {"source": "manifest", "message": str(e), "problems": []}


def status_command(run_dir: Path, output_format: str) -> int:
    """``prefloop status RUN_DIR``: phase, round, budget use, pairs, accuracy, dataset files."""
    from prefloop.status import read_status, render_status

    status = read_status(run_dir)
    if output_format == "text":
        print(render_status(status), end="")
    else:
        emit(status.to_dict(), output_format)
    return EXIT_OK
