"""``spec.postTraining`` as a Kubernetes Job: ``prefloop operator`` (a real subprocess) against
the emulator creates ``<run>-post-training`` once the run has Succeeded, with the trainer role's
pod settings, the run's volume and manifest, an owner reference and an Event; a failed run and a
run without ``postTraining`` get none (issue 11).

The roles are ``endpoint:`` services (no Deployments to wait for), so the operator creates the
driver Job at once; the test plays the driver and the Job controller by writing the progress
ConfigMap and the Job's status, as the driver and Kubernetes would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import NS, Cluster, OperatorProcess, eventually

from prefloop.spec_cluster import SERVICE_ROLES
from prefloop_operator.children import MANIFEST_PATH
from prefloop_operator.progress import now_rfc3339

NODE_SELECTOR = {"gpu": "a100"}


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster, tmp_path_factory.mktemp("operator"))
    op.start()
    yield op
    op.stop()


def manifest(name: str, post_training: bool) -> dict[str, Any]:
    roles: dict[str, Any] = {r: {"endpoint": f"{r}.example:7000"} for r in SERVICE_ROLES}
    roles["trainer"]["nodeSelector"] = NODE_SELECTOR
    spec: dict[str, Any] = {"roles": roles, "storage": {"claimName": "data", "subPath": name}}
    if post_training:
        spec["postTraining"] = {"kind": "dpo", "model": "/models/sft", "epochs": 2}
    return {
        "apiVersion": "prefloop.dev/v1alpha1",
        "kind": "ActiveRun",
        "metadata": {"name": name},
        "spec": spec,
    }


def finish_driver(cluster: Cluster, name: str, *, succeeded: bool) -> None:
    """What the driver and the Job controller write when the driver exits."""
    eventually(lambda: cluster.get("Job", f"{name}-driver"), what="driver Job created")
    state = "finished" if succeeded else "failed"
    data = {"state": state, "round": "3", "annotationsUsed": "12", "heartbeat": now_rfc3339()}
    data["stopReason" if succeeded else "error"] = "prompts exhausted" if succeeded else "boom"
    cluster.kube.patch("ConfigMap", NS, f"{name}-progress", {"data": data})
    # the driver writes its last report before it exits, and Kubernetes marks the Job done
    # later: wait until the operator has read the report (it lists ConfigMaps before Jobs)
    eventually(lambda: cluster.status(name).get("round") == 3, what="progress read")
    condition = "Complete" if succeeded else "Failed"
    status = {
        "conditions": [{"type": condition, "status": "True", "reason": condition, "message": ""}],
        "succeeded" if succeeded else "failed": 1,
    }
    cluster.kube.patch("Job", NS, f"{name}-driver", {"status": status}, subresource="status")


def test_a_succeeded_run_gets_its_post_training_job(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    uid = cluster.apply(manifest("pt-ok", post_training=True))["metadata"]["uid"]
    finish_driver(cluster, "pt-ok", succeeded=True)
    job = eventually(lambda: cluster.get("Job", "pt-ok-post-training"), what="post-training Job")
    assert cluster.status("pt-ok")["phase"] == "Succeeded"
    (ref,) = job["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("ActiveRun", "pt-ok", uid)
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "post-training"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["prefloop"]
    assert container["args"] == ["train", "manifest", MANIFEST_PATH]
    assert container["image"] == "registry.example/prefloop:test"
    assert pod["nodeSelector"] == NODE_SELECTOR  # the trainer role's pod settings
    assert pod["restartPolicy"] == "Never"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "data"
    assert volumes["manifest"]["configMap"]["name"] == "pt-ok-manifest"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["data"]["subPath"] == "pt-ok"
    eventually(
        lambda: any(e["reason"] == "PostTrainingStarted" for e in cluster.events("pt-ok")),
        what="PostTrainingStarted Event",
    )
    created = job["metadata"]["creationTimestamp"]
    time.sleep(3)  # more reconcile ticks (1 s each) do not make it again
    assert cluster.get("Job", "pt-ok-post-training")["metadata"]["creationTimestamp"] == created


def test_failed_runs_and_runs_without_post_training_get_no_job(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.apply(manifest("pt-failed", post_training=True))
    cluster.apply(manifest("pt-none", post_training=False))
    finish_driver(cluster, "pt-failed", succeeded=False)
    finish_driver(cluster, "pt-none", succeeded=True)
    eventually(lambda: cluster.status("pt-failed").get("phase") == "Failed", what="Failed")
    eventually(lambda: cluster.status("pt-none").get("phase") == "Succeeded", what="Succeeded")
    time.sleep(3)  # several reconcile ticks after the terminal phase
    assert cluster.get("Job", "pt-failed-post-training") is None
    assert cluster.get("Job", "pt-none-post-training") is None
