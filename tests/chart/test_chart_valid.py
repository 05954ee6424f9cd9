"""The chart lints, renders, and every object it renders is valid Kubernetes.

A real helm v4 renders each scenario of charts/prefloop/ci/ (default values, GPU node pool,
monitoring on, shared services); every object is validated against the Kubernetes OpenAPI
schemas of the oldest and newest Kubernetes the chart supports (``kubernetes-validate``, strict:
unknown fields fail), custom resources against their CRD (rendered with the chart) or, for the
Prometheus Operator kinds, the structural schemas of monitor_schemas.py; and every pod meets
the restricted Pod Security Standard.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_helpers import CHART, SCENARIOS, helm, pod_specs, pyproject_version, render, scenario
from monitor_schemas import SCHEMAS

from prefloop import __version__

KUBERNETES_VERSIONS = ("1.29.0", "1.35.0")
"""Chart.yaml kubeVersion's floor (CEL validation rules are GA there) and the kubectl we ship."""


def test_chart_metadata_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == pyproject_version() == __version__


@pytest.mark.parametrize("name", SCENARIOS)
def test_helm_lint_strict(name: str) -> None:
    args = ["lint", "--strict", "."]
    for f in SCENARIOS[name]:
        args += ["-f", f]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def _crd_schemas(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD version rendered."""
    out = {}
    for crd in (o for o in objects if o["kind"] == "CustomResourceDefinition"):
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            out[key] = version["schema"]["openAPIV3Schema"]
    return out


def validate_object(obj: dict[str, Any], crds: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Validate one object; returns what it was checked against (raises when invalid)."""
    kind = obj["kind"]
    if kind in SCHEMAS:
        jsonschema.validate(obj, SCHEMAS[kind])
        return "monitor schema"
    crd_schema = crds.get((obj["apiVersion"], kind))
    if crd_schema is not None:
        jsonschema.validate(obj, crd_schema)
        return "CRD schema"
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)
    return "Kubernetes OpenAPI"


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_rendered_object_validates(name: str) -> None:
    objects = scenario(name)
    crds = _crd_schemas(objects)
    checked = {f"{o['kind']}/{o['metadata']['name']}": validate_object(o, crds) for o in objects}
    kinds = {key.split("/")[0] for key in checked}
    assert {"Deployment", "Service", "ClusterRole", "Role", "NetworkPolicy", "Pod"} <= kinds
    assert checked["CustomResourceDefinition/activeruns.prefloop.dev"] == "Kubernetes OpenAPI"
    if name == "monitoring":
        assert checked["ServiceMonitor/rel-prefloop"] == "monitor schema"
        assert checked["PodMonitor/rel-prefloop-runs"] == "monitor schema"
        assert {"ServiceMonitor", "PodMonitor", "ConfigMap"} <= kinds


def test_validation_catches_a_wrong_field() -> None:
    """The checks above are not vacuous: a misspelt or mistyped field is rejected."""
    objects = scenario("monitoring")
    crds = _crd_schemas(objects)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(deployment, crds)
    pod_monitor = next(o for o in objects if o["kind"] == "PodMonitor")
    pod_monitor["spec"]["podMetricEndpoints"] = pod_monitor["spec"].pop("podMetricsEndpoints")
    with pytest.raises(jsonschema.ValidationError):
        validate_object(pod_monitor, crds)
    peering = next(o for o in objects if o["kind"] == "ClusterKopfPeering")
    peering["status"] = "not an object"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(peering, crds)


def _restricted_violations(where: str, spec: dict[str, Any]) -> list[str]:
    """What keeps a pod from the restricted Pod Security Standard (plus our read-only root)."""
    bad = []
    pod = spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            bad.append(f"{where}: {key}")
    if any("hostPath" in v for v in spec.get("volumes", [])):
        bad.append(f"{where}: hostPath volume")
    scratch = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = {**pod, **c.get("securityContext", {})}
        at = f"{where}/{c['name']}"
        if sc.get("runAsNonRoot") is not True or sc.get("runAsUser", 1) == 0:
            bad.append(f"{at}: may run as root")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{at}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            bad.append(f"{at}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{at}: root filesystem is writable")
        if c.get("securityContext", {}).get("capabilities", {}).get("drop") != ["ALL"]:
            bad.append(f"{at}: capabilities not dropped (ALL)")
        if c.get("securityContext", {}).get("capabilities", {}).get("add"):
            bad.append(f"{at}: adds capabilities")
        if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            bad.append(f"{at}: seccompProfile is not RuntimeDefault")
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        if not tmp or tmp[0]["name"] not in scratch:
            bad.append(f"{at}: no emptyDir at /tmp")
    return bad


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_pod_is_restricted(name: str) -> None:
    specs = list(pod_specs(scenario(name)))
    assert specs
    violations = [v for where, spec in specs for v in _restricted_violations(where, spec)]
    assert violations == []


def test_restricted_check_catches_a_root_container() -> None:
    objects = render(sets=("containerSecurityContext.readOnlyRootFilesystem=false",))
    where, spec = next(pod_specs(objects))
    assert any("writable" in v for v in _restricted_violations(where, spec))
