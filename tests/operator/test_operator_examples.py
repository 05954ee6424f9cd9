"""``prefloop operator`` (a real subprocess) against the Kubernetes emulator: every ActiveRun in
examples/ gets its children with owner references, GPU resources, node selectors and
tolerations; the driver Job is created once the roles are ready; suspend scales the GPU roles
to zero and suspends the Job, unsuspend restores both; an invalid spec gets phase Failed with a
reason and a message naming the field; the liveness endpoint answers."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import NS, Cluster, OperatorProcess, eventually

from prefloop.spec_cluster import SERVICE_ROLES

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
GPU_ROLES = {  # the roles of examples/cluster-gpu.yaml that ask for a GPU
    role
    for role, spec in yaml.safe_load((EXAMPLES[0].parent / "cluster-gpu.yaml").read_text())["spec"][
        "roles"
    ].items()
    if "nvidia.com/gpu" in spec.get("resources", {}).get("limits", {})
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster, tmp_path_factory.mktemp("operator"))
    op.liveness_port = free_port()  # type: ignore[attr-defined]
    op.start("--liveness-port", str(op.liveness_port))  # type: ignore[attr-defined]
    yield op
    op.stop()


def load(example: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(example.read_text())
    return manifest


def containers(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = obj["spec"]["template"]["spec"]["containers"]
    return dict(c)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_gets_owned_children(
    cluster: Cluster, operator: OperatorProcess, example: Path
) -> None:
    manifest = load(example)
    name = manifest["metadata"]["name"]
    uid = cluster.apply(manifest)["metadata"]["uid"]
    roles = manifest["spec"].get("roles", {})
    managed = [r for r in SERVICE_ROLES if "endpoint" not in roles.get(r, {})]
    kinds = [("ConfigMap", f"{name}-manifest"), ("ConfigMap", f"{name}-progress")]
    kinds += [(k, f"{name}-driver") for k in ("ServiceAccount", "Role", "RoleBinding")]
    kinds += [(k, f"{name}-{r}") for r in managed for k in ("Deployment", "Service")]
    children = {
        key: eventually(lambda k=key: cluster.get(*k), what=f"{key} created") for key in kinds
    }
    for (kind, child), obj in children.items():
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "ActiveRun",
            name,
            uid,
            True,
        ), (kind, child)
        assert obj["metadata"]["labels"]["prefloop.dev/run"] == name
    view = yaml.safe_load(children[("ConfigMap", f"{name}-manifest")]["data"]["activerun.yaml"])
    assert (
        view["spec"]["acquisition"] == manifest["spec"]["acquisition"] | view["spec"]["acquisition"]
    )
    for role in managed:
        dep = children[("Deployment", f"{name}-{role}")]
        pod = dep["spec"]["template"]["spec"]
        want = roles.get(role, {})
        limits = containers(dep)["resources"]["limits"]
        assert limits == want.get("resources", {}).get("limits", {}), role
        assert pod.get("nodeSelector", {}) == want.get("nodeSelector", {}), role
        assert pod.get("tolerations", []) == want.get("tolerations", []), role
        gpu = "nvidia.com/gpu" in limits
        expected_image = "registry.example/prefloop:test" + ("-cuda" if gpu else "")
        assert containers(dep)["image"] == expected_image
    status = eventually(lambda: cluster.status(name).get("phase"), what="a status")
    assert status == "Pending"
    assert cluster.get("Job", f"{name}-driver") is None  # the roles are not ready yet

    # play the Deployment controller: the roles become ready, then the driver Job appears
    for role in managed:
        want = cluster.get("Deployment", f"{name}-{role}")["spec"]["replicas"]  # type: ignore[index]
        cluster.kube.patch("Deployment", NS, f"{name}-{role}",
                           {"status": {"readyReplicas": want, "replicas": want}},
                           subresource="status")  # fmt: skip
    job = eventually(lambda: cluster.get("Job", f"{name}-driver"), what="the driver Job")
    assert job["spec"]["suspend"] is False
    assert containers(job)["args"][:2] == ["driver", "/etc/prefloop/activerun.yaml"]
    ready = eventually(
        lambda: next(
            c for c in cluster.status(name)["conditions"]
            if c["type"] == "Ready" and c["status"] == "True"
        ),
        what="Ready=True",
    )  # fmt: skip
    assert ready["reason"] == "AllRolesReady"


def test_suspend_scales_gpu_roles_to_zero_and_suspends_the_job(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    name = "cluster-gpu"
    eventually(lambda: cluster.get("Job", f"{name}-driver"), what="the example ran first")
    cluster.patch_spec(name, {"suspend": True})
    job = eventually(
        lambda: (j := cluster.get("Job", f"{name}-driver")) and j["spec"]["suspend"] and j
    )
    assert job["spec"]["suspend"] is True
    for role in SERVICE_ROLES:
        want = 0 if role in GPU_ROLES else 1
        eventually(
            lambda r=role, w=want: (
                cluster.get("Deployment", f"{name}-{r}")["spec"]["replicas"] == w
            ),
            what=f"{role} replicas {want}",
        )
    status = eventually(lambda: (s := cluster.status(name))["phase"] == "Suspended" and s)
    suspended = next(c for c in status["conditions"] if c["type"] == "Suspended")
    assert suspended["status"] == "True"

    cluster.patch_spec(name, {"suspend": False})
    eventually(lambda: cluster.get("Job", f"{name}-driver")["spec"]["suspend"] is False)
    for role in GPU_ROLES:
        eventually(lambda r=role: cluster.get("Deployment", f"{name}-{r}")["spec"]["replicas"] == 1)
    eventually(lambda: cluster.status(name)["phase"] != "Suspended", what="resumed")


def test_an_invalid_spec_fails_naming_the_field(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    manifest = load(EXAMPLES[0])
    manifest["metadata"]["name"] = "bad-method"
    manifest["spec"]["acquisition"] = {"method": "nope"}
    cluster.apply(manifest)  # the emulator does not enforce the CRD's enum; the operator does
    status = eventually(lambda: (s := cluster.status("bad-method")).get("phase") == "Failed" and s)
    assert status["reason"] == "InvalidSpec"
    assert status["message"].startswith("spec.acquisition.method"), status["message"]
    assert "'nope'" in status["message"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSpec")
    assert cluster.get("ConfigMap", "bad-method-manifest") is None  # nothing was deployed
    warning = eventually(
        lambda: [e for e in cluster.events("bad-method") if e["type"] == "Warning"]
    )
    assert warning[0]["reason"] == "Failed" and "spec.acquisition.method" in warning[0]["message"]

    cluster.patch_spec("bad-method", {"acquisition": {"method": "delta_ucb"}})  # fixed
    eventually(lambda: cluster.status("bad-method")["phase"] == "Pending", what="recovered")
    eventually(lambda: cluster.get("ConfigMap", "bad-method-manifest"), what="deployed now")


def test_liveness_endpoint_answers(operator: OperatorProcess) -> None:
    port = operator.liveness_port  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}/healthz"
    body = eventually(lambda: urllib.request.urlopen(url, timeout=2).read(), what="/healthz")
    assert body is not None
