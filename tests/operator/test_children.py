"""The children the operator builds for a run, as pure functions (no cluster): names and labels,
owner references, GPU resources, node selectors and tolerations, the driver Job's command and
failure policy, the driver's least-privilege access, prompts from a ConfigMap, endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from prefloop.rpc.serve import ROLES
from prefloop.spec import ActiveRun, load_activerun, parse_activerun
from prefloop.spec_cluster import DATA_MOUNT_PATH, PROMPTS_MOUNT_PATH, SERVICE_ROLES
from prefloop_operator import children as ch

REPO = Path(__file__).resolve().parents[2]
OWNER = ch.Owner(name="cluster-gpu", namespace="team-a", uid="uid-1")
DEFAULTS = ch.Defaults(image="img:cpu", gpu_image="img:cuda", kafka_bootstrap="kafka:9092")


def gpu_run() -> ActiveRun:
    return load_activerun(REPO / "examples" / "cluster-gpu.yaml")


def pod_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def test_service_roles_match_the_servers() -> None:
    assert tuple(SERVICE_ROLES) == tuple(ROLES)


def test_every_child_is_owned_and_labelled() -> None:
    run = gpu_run()
    objs = [
        ch.manifest_configmap(run, OWNER),
        ch.progress_configmap(OWNER),
        ch.driver_job(run, OWNER, DEFAULTS, suspend=False),
        *ch.driver_access(run, OWNER),
    ]
    for role in ch.managed_roles(run):
        objs += [ch.role_deployment(run, role, OWNER, DEFAULTS, 1), ch.role_service(OWNER, role)]
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("ConfigMap", "cluster-gpu-manifest") in names
    assert ("Job", "cluster-gpu-driver") in names
    assert {("Deployment", f"cluster-gpu-{r}") for r in SERVICE_ROLES} <= names
    for obj in objs:
        meta = obj["metadata"]
        assert meta["namespace"] == "team-a"
        (ref,) = meta["ownerReferences"]
        assert ref == {
            "apiVersion": "prefloop.dev/v1alpha1",
            "kind": "ActiveRun",
            "name": "cluster-gpu",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert meta["labels"]["app.kubernetes.io/name"] == "prefloop"
        assert meta["labels"]["app.kubernetes.io/instance"] == "cluster-gpu"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "prefloop-operator"
        assert meta["labels"]["prefloop.dev/run"] == "cluster-gpu"
        assert len(meta["name"]) <= 63


def test_gpu_roles_get_gpus_node_pool_and_tolerations() -> None:
    run = gpu_run()
    for role in ("generation",):  # the vLLM pool
        pod = pod_of(ch.role_deployment(run, role, OWNER, DEFAULTS, 1))
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["image"] == "img:cuda"  # the operator's GPU image
        assert pod["nodeSelector"] == {"prefloop.dev/pool": "gpu"}
        assert pod["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
        assert pod["runtimeClassName"] == "nvidia"
        assert ch.uses_gpu(getattr(run.spec.roles, role))
    for role in ("reward", "acquisition", "judge", "trainer"):
        pod = pod_of(ch.role_deployment(run, role, OWNER, DEFAULTS, 1))
        (container,) = pod["containers"]
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        assert container["image"] == "img:cpu"
        assert "tolerations" not in pod and "nodeSelector" not in pod


def test_role_deployment_serves_on_named_ports_with_probes_and_restricted_pods() -> None:
    run = gpu_run()
    dep = ch.role_deployment(run, "judge", OWNER, DEFAULTS, 1)
    pod = pod_of(dep)
    (c,) = pod["containers"]
    assert c["command"] == ["prefloop"]
    assert c["args"][:3] == ["serve", "judge", "/etc/prefloop/activerun.yaml"]
    assert c["args"][c["args"].index("--host") + 1] == "0.0.0.0"
    assert c["args"][c["args"].index("--kafka") + 1] == "kafka:9092"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 8000, "metrics": 9090}
    assert c["readinessProbe"]["grpc"] == {"port": 8000}
    assert c["workingDir"] == DATA_MOUNT_PATH
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # never two judges on one log
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"] == {"claimName": "prefloop-data"}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "data")
    assert mount == {"name": "data", "mountPath": DATA_MOUNT_PATH, "subPath": "gpu-runs"}
    svc = ch.role_service(OWNER, "judge")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels(dep).items()


def pod_labels(dep: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = dep["spec"]["template"]["metadata"]["labels"]
    return labels


def test_driver_job_resumes_through_the_services_and_tells_stopped_from_failed() -> None:
    run = gpu_run()
    job = ch.driver_job(run, OWNER, DEFAULTS, suspend=True)
    assert job["spec"]["suspend"] is True
    assert job["spec"]["backoffLimit"] == 6
    pod = pod_of(job)
    (c,) = pod["containers"]
    args = c["args"]
    assert args[:2] == ["driver", "/etc/prefloop/activerun.yaml"]
    connect = dict(p.split("=", 1) for p in args[args.index("--connect") + 1].split(","))
    assert connect == {
        **{r: f"cluster-gpu-{r}.team-a.svc:8000" for r in SERVICE_ROLES},
        "kafka": "kafka:9092",
    }
    assert args[args.index("--progress-configmap") + 1] == "team-a/cluster-gpu-progress"
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "cluster-gpu-driver"
    assert pod["terminationGracePeriodSeconds"] == 900
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert [(r["action"], r.get("onExitCodes", {}).get("values")) for r in rules] == [
        ("FailJob", [ch.INVALID_EXIT_CODE]),
        ("Ignore", [ch.STOPPED_EXIT_CODE]),
        ("Ignore", None),
    ]
    # output.credentialsSecret: environment and files for the dataset copy
    assert {"secretRef": {"name": "prefloop-s3"}} in c["envFrom"]
    assert any(v.get("secret") == {"secretName": "prefloop-s3"} for v in pod["volumes"])


def test_driver_may_only_patch_its_progress_configmap() -> None:
    sa, role, binding = ch.driver_access(gpu_run(), OWNER)
    assert sa["kind"] == "ServiceAccount" and sa["metadata"]["name"] == "cluster-gpu-driver"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["cluster-gpu-progress"],
            "verbs": ["get", "patch"],
        }
    ]
    assert binding["roleRef"]["name"] == "cluster-gpu-driver"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cluster-gpu-driver", "namespace": "team-a"}
    ]


def manifest(**spec: Any) -> ActiveRun:
    return parse_activerun(
        {
            "apiVersion": "prefloop.dev/v1alpha1",
            "kind": "ActiveRun",
            "metadata": {"name": "r1"},
            "spec": spec,
        }
    )


def test_endpoints_replace_deployments_and_go_into_connect() -> None:
    run = manifest(roles={"judge": {"endpoint": "judge.shared.svc:8000"}})
    assert ch.managed_roles(run) == ["generation", "reward", "acquisition", "trainer"]
    connect = ch.connect_value(run, "ns", ch.Defaults())
    assert "judge=judge.shared.svc:8000" in connect.split(",")
    assert "kafka=" not in connect  # no broker configured anywhere


def test_prompts_from_a_configmap_are_mounted_and_pointed_at() -> None:
    run = manifest(prompts={"configMap": {"name": "my-prompts", "key": "prompts.jsonl"}})
    cm = ch.manifest_configmap(run, ch.Owner("r1", "ns", "u"))
    pod_view = yaml.safe_load(cm["data"]["activerun.yaml"])
    assert pod_view["spec"]["prompts"]["path"] == f"{PROMPTS_MOUNT_PATH}/prompts.jsonl"
    assert pod_view["metadata"] == {"name": "r1", "namespace": "ns"}
    assert parse_activerun(pod_view).fingerprint() == ch.pod_manifest(run).fingerprint()
    pod = pod_of(ch.driver_job(run, ch.Owner("r1", "ns", "u"), ch.Defaults(), suspend=False))
    volume = next(v for v in pod["volumes"] if v["name"] == "prompts")
    assert volume["configMap"] == {
        "name": "my-prompts",
        "items": [{"key": "prompts.jsonl", "path": "prompts.jsonl"}],
    }
    (c,) = pod["containers"]
    assert {"name": "prompts", "mountPath": PROMPTS_MOUNT_PATH, "readOnly": True} in c[
        "volumeMounts"
    ]


def test_without_storage_the_run_uses_an_emptydir() -> None:
    pod = pod_of(ch.driver_job(manifest(), ch.Owner("r1", "ns", "u"), ch.Defaults(), False))
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]


@pytest.mark.parametrize(
    ("suspended", "finished", "expect"),
    [(False, False, {"generation": 1, "judge": 1}), (True, False, {"generation": 0, "judge": 1}),
     (False, True, {"generation": 0, "judge": 0})],
)  # fmt: skip
def test_suspend_releases_only_gpu_roles_and_the_end_releases_all(
    suspended: bool, finished: bool, expect: dict[str, int]
) -> None:
    run = gpu_run()
    got = {r: ch.role_replicas(run, r, suspended=suspended, finished=finished) for r in expect}
    assert got == expect


def test_spec_hash_changes_with_what_the_operator_wants() -> None:
    run = gpu_run()
    one = ch.with_spec_hash(ch.role_deployment(run, "generation", OWNER, DEFAULTS, 1))
    same = ch.with_spec_hash(ch.role_deployment(run, "generation", OWNER, DEFAULTS, 1))
    zero = ch.with_spec_hash(ch.role_deployment(run, "generation", OWNER, DEFAULTS, 0))
    key = ch.SPEC_HASH
    assert one["metadata"]["annotations"][key] == same["metadata"]["annotations"][key]
    assert one["metadata"]["annotations"][key] != zero["metadata"]["annotations"][key]
