"""Run the embedded loop from the quickstart manifest with overrides, keeping the result.

The engine tests read what the loop returns (rows, metrics, state) instead of the files of the
run directory, so they check the engine and not the output layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from prefloop.engine.build import build_embedded_roles
from prefloop.engine.round_engine import Roles, RunResult
from prefloop.engine.runner import execute
from prefloop.spec import load_activerun


def run_loop(
    repo_root: Path,
    out: Path,
    overrides: list[str],
    wrap_roles: Callable[[Roles], None] | None = None,
) -> RunResult:
    """The quickstart with ``overrides``, run embedded into ``out``; ``wrap_roles`` may replace
    roles (e.g. wrap the acquisition role to record what the rule returned)."""
    manifest = repo_root / "examples" / "quickstart.yaml"
    run = load_activerun(manifest, overrides)
    roles = None
    if wrap_roles is not None:
        roles, _, _ = build_embedded_roles(run, out, manifest.parent)
        wrap_roles(roles)
    return execute(
        run, manifest_dir=manifest.parent, output=str(out), roles=roles, console=Console(quiet=True)
    )


def write_pool(path: Path, prompts: list[dict[str, Any]]) -> Path:
    """Write prompts with scored responses as the JSONL the loop reads."""
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
    return path
