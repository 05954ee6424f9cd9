"""Pure functions from an ActiveRun to the Kubernetes objects the operator owns for it.

Nothing here talks to a cluster: each function takes the validated run (and the operator's
defaults) and returns plain dicts, so every child can be checked alone. Per run:

- ``<run>-manifest`` ConfigMap: the manifest the pods read (``/etc/prefloop/activerun.yaml``),
  with ``prompts.path`` pointed at the mounted ``prompts.configMap`` when one is given;
- ``<run>-progress`` ConfigMap: written by the driver (:mod:`prefloop_operator.progress`);
- ``<run>-<role>`` Deployment + Service for every role without ``endpoint:``;
- ``<run>-driver`` Job running ``prefloop driver`` against the roles, and its ServiceAccount,
  Role and RoleBinding (it may only get and patch its progress ConfigMap).

Every child carries the ``app.kubernetes.io/*`` labels, ``prefloop.dev/run`` and an
ownerReference to the ActiveRun; its ``prefloop.dev/spec-hash`` annotation lets the operator
patch a child only when what it wants changed. Pods are restricted (non-root, read-only root
filesystem, no capabilities, RuntimeDefault seccomp); their working directory is the run's
volume, so the manifest's relative paths land there.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from prefloop import __version__
from prefloop.spec import ActiveRun
from prefloop.spec_cluster import (
    DATA_MOUNT_PATH,
    MANIFEST_MOUNT_PATH,
    PROMPTS_MOUNT_PATH,
    SERVICE_ROLES,
    PodSettings,
    RoleSpec,
)
from prefloop_operator.progress import INVALID_EXIT_CODE, STOPPED_EXIT_CODE

GRPC_PORT = 8000
METRICS_PORT = 9090
MANAGED_BY = "prefloop-operator"
RUN_LABEL = "prefloop.dev/run"
SPEC_HASH = "prefloop.dev/spec-hash"
MANIFEST_FILE = "activerun.yaml"
MANIFEST_PATH = f"{MANIFEST_MOUNT_PATH}/{MANIFEST_FILE}"
OUTPUT_SECRET_MOUNT = "/var/run/secrets/prefloop/output"
POD_FS_GROUP = 10001
"""Group of the volume's files, so the image's non-root user can write them."""
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HOME": "/tmp",
    "MPLCONFIGDIR": "/tmp/matplotlib",
}


@dataclass(frozen=True)
class Owner:
    """The ActiveRun that owns the children (what an ownerReference needs)."""

    name: str
    namespace: str
    uid: str
    api_version: str = "prefloop.dev/v1alpha1"
    kind: str = "ActiveRun"

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Owner:
        """The owner described by an ActiveRun object as read from the API server."""
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            uid=meta["uid"],
            api_version=body.get("apiVersion") or "prefloop.dev/v1alpha1",
            kind=body.get("kind") or "ActiveRun",
        )

    def reference(self) -> dict[str, Any]:
        """The ownerReference children carry (deleted with the run by the garbage collector)."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class Defaults:
    """What the operator's environment decides for every run (the chart sets it)."""

    image: str = f"prefloop:{__version__}"
    gpu_image: str | None = None
    """Image of roles that request a GPU (e.g. built with the `vllm` extra); None: `image`."""
    image_pull_policy: str | None = None
    kafka_bootstrap: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Defaults:
        """``PREFLOOP_IMAGE``, ``PREFLOOP_GPU_IMAGE``, ``PREFLOOP_IMAGE_PULL_POLICY``,
        ``PREFLOOP_KAFKA_BOOTSTRAP``."""
        return cls(
            image=environ.get("PREFLOOP_IMAGE") or cls.image,
            gpu_image=environ.get("PREFLOOP_GPU_IMAGE") or None,
            image_pull_policy=environ.get("PREFLOOP_IMAGE_PULL_POLICY") or None,
            kafka_bootstrap=environ.get("PREFLOOP_KAFKA_BOOTSTRAP") or None,
        )


# -- names, labels, addresses -------------------------------------------------------------------


def child_name(run: str, component: str) -> str:
    """``<run>-<component>``: manifest, progress, driver or a role."""
    return f"{run}-{component}"


def labels(run: str, component: str) -> dict[str, str]:
    """The labels of every child (and of its pods)."""
    return {
        "app.kubernetes.io/name": "prefloop",
        "app.kubernetes.io/instance": run,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        RUN_LABEL: run,
    }


def selector(run: str, component: str) -> dict[str, str]:
    """The labels a Deployment or Service selects its pods by."""
    full = labels(run, component)
    return {k: full[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")} | {
        "app.kubernetes.io/component": component
    }


def managed_roles(run: ActiveRun) -> list[str]:
    """The roles the operator deploys (those without ``endpoint:``)."""
    return [r for r in SERVICE_ROLES if _role(run, r).endpoint is None]


def role_address(run: ActiveRun, role: str, namespace: str) -> str:
    """``HOST:PORT`` the driver calls: the role's endpoint, or its Service's DNS name."""
    endpoint = _role(run, role).endpoint
    if endpoint is not None:
        return endpoint
    return f"{child_name(run.metadata.name, role)}.{namespace}.svc:{GRPC_PORT}"


def kafka_bootstrap(run: ActiveRun, defaults: Defaults) -> str | None:
    """The run's broker: ``spec.kafka.bootstrapServers``, else the operator's default."""
    return run.spec.kafka.bootstrap_servers or defaults.kafka_bootstrap


def connect_value(run: ActiveRun, namespace: str, defaults: Defaults) -> str:
    """The driver's ``--connect``: every role's address, and the broker when there is one."""
    parts = [f"{r}={role_address(run, r, namespace)}" for r in SERVICE_ROLES]
    bootstrap = kafka_bootstrap(run, defaults)
    if bootstrap:
        parts.append(f"kafka={bootstrap}")
    return ",".join(parts)


def uses_gpu(pod: PodSettings) -> bool:
    """Whether the pod asks for an accelerator (``nvidia.com/gpu``, ``amd.com/gpu``, ...)."""
    keys = [*pod.resources.limits, *pod.resources.requests]
    return any(k.split("/")[-1] == "gpu" for k in keys)


def _role(run: ActiveRun, role: str) -> RoleSpec:
    spec: RoleSpec = getattr(run.spec.roles, role)
    return spec


def with_spec_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with an annotation hashing what the operator wants of it."""
    blob = json.dumps({k: v for k, v in obj.items() if k != "status"}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("annotations", {})[SPEC_HASH] = digest
    return out


def _metadata(owner: Owner, component: str, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or child_name(owner.name, component),
        "namespace": owner.namespace,
        "labels": labels(owner.name, component),
        "ownerReferences": [owner.reference()],
    }


# -- ConfigMaps -------------------------------------------------------------------------------


def pod_manifest(run: ActiveRun) -> ActiveRun:
    """The manifest as the pods read it: ``prompts.path`` points at a mounted configMap key."""
    ref = run.spec.prompts.config_map
    if ref is None:
        return run
    prompts = run.spec.prompts.model_copy(update={"path": f"{PROMPTS_MOUNT_PATH}/{ref.key}"})
    return run.model_copy(update={"spec": run.spec.model_copy(update={"prompts": prompts})})


def manifest_configmap(run: ActiveRun, owner: Owner) -> dict[str, Any]:
    """``<run>-manifest``: the manifest every pod of the run reads."""
    manifest = pod_manifest(run).model_dump(mode="json", by_alias=True)
    manifest["metadata"] = {"name": run.metadata.name, "namespace": owner.namespace}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(owner, "manifest"),
        "data": {MANIFEST_FILE: yaml.safe_dump(manifest, sort_keys=False)},
    }


def progress_configmap(owner: Owner) -> dict[str, Any]:
    """``<run>-progress``: empty until the driver reports (the operator never writes data)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(owner, "progress"),
        "data": {},
    }


# -- pods ---------------------------------------------------------------------------------------


def _volumes(run: ActiveRun, owner: Owner, driver: bool) -> tuple[list[Any], list[Any]]:
    storage = run.spec.storage
    data_volume: dict[str, Any] = (
        {"name": "data", "persistentVolumeClaim": {"claimName": storage.claim_name}}
        if storage is not None
        else {"name": "data", "emptyDir": {}}
    )
    data_mount: dict[str, Any] = {"name": "data", "mountPath": DATA_MOUNT_PATH}
    if storage is not None and storage.sub_path:
        data_mount["subPath"] = storage.sub_path
    volumes = [
        data_volume,
        {
            "name": "manifest",
            "configMap": {"name": child_name(owner.name, "manifest")},
        },
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts = [
        data_mount,
        {"name": "manifest", "mountPath": MANIFEST_MOUNT_PATH, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    ref = run.spec.prompts.config_map
    if ref is not None:
        volumes.append(
            {
                "name": "prompts",
                "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": ref.key}]},
            }
        )
        mounts.append({"name": "prompts", "mountPath": PROMPTS_MOUNT_PATH, "readOnly": True})
    secret = run.spec.output.credentials_secret
    if driver and secret is not None:
        volumes.append({"name": "output-credentials", "secret": {"secretName": secret.name}})
        mounts.append(
            {"name": "output-credentials", "mountPath": OUTPUT_SECRET_MOUNT, "readOnly": True}
        )
    return volumes, mounts


def _env(pod: PodSettings, run_name: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in OFFLINE_ENV.items()]
    env.append({"name": "PREFLOOP_RUN", "value": run_name})
    env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in pod.env]
    return env


def _container(
    name: str,
    pod: PodSettings,
    run: ActiveRun,
    defaults: Defaults,
    args: list[str],
    mounts: list[Any],
) -> dict[str, Any]:
    image = pod.image or (defaults.gpu_image if uses_gpu(pod) and defaults.gpu_image else None)
    container: dict[str, Any] = {
        "name": name,
        "image": image or defaults.image,
        "command": ["prefloop"],
        "args": args,
        "workingDir": DATA_MOUNT_PATH,
        "env": _env(pod, run.metadata.name),
        "resources": pod.resources.model_dump(by_alias=True),
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pull = pod.image_pull_policy or defaults.image_pull_policy
    if pull:
        container["imagePullPolicy"] = pull
    if pod.env_from:
        container["envFrom"] = [
            e.model_dump(by_alias=True, exclude_none=True) for e in pod.env_from
        ]
    return container


def _pod_spec(pod: PodSettings, containers: list[Any], volumes: list[Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "fsGroup": POD_FS_GROUP,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": volumes,
    }
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in pod.tolerations
        ]
    if pod.affinity:
        spec["affinity"] = copy.deepcopy(pod.affinity)
    for key, value in (
        ("priorityClassName", pod.priority_class_name),
        ("runtimeClassName", pod.runtime_class_name),
        ("serviceAccountName", pod.service_account_name),
    ):
        if value:
            spec[key] = value
    return spec


def _grpc_probe(period_seconds: int, failures: int) -> dict[str, Any]:
    return {
        "grpc": {"port": GRPC_PORT},
        "periodSeconds": period_seconds,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def role_deployment(
    run: ActiveRun, role: str, owner: Owner, defaults: Defaults, replicas: int
) -> dict[str, Any]:
    """``<run>-<role>``: ``prefloop serve ROLE`` on the run's volume, with gRPC probes."""
    spec = _role(run, role)
    volumes, mounts = _volumes(run, owner, driver=False)
    args = [
        "serve", role, MANIFEST_PATH,
        "--host", "0.0.0.0",
        "--port", str(GRPC_PORT),
        "--metrics-port", str(METRICS_PORT),
    ]  # fmt: skip
    if spec.replicas > 1:  # each replica its own state (feature cache, logs)
        args += ["--state-dir", f"state/{run.metadata.name}/{role}/$(POD_NAME)"]
    bootstrap = kafka_bootstrap(run, defaults)
    if bootstrap:
        args += ["--kafka", bootstrap]
    container = _container(role, spec, run, defaults, args, mounts)
    container["ports"] = [
        {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    ]
    container["readinessProbe"] = _grpc_probe(5, 3)
    container["livenessProbe"] = _grpc_probe(20, 3)
    container["startupProbe"] = _grpc_probe(10, 180)  # up to 30 min to load a model
    pod = _pod_spec(spec, [container], volumes)
    pod["automountServiceAccountToken"] = False  # the roles never call the Kubernetes API
    pod["terminationGracePeriodSeconds"] = 60
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, role),
        "spec": {
            "replicas": replicas,
            # never two judges on one verdict log, nor a rollout needing twice the GPUs
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(owner.name, role)},
            "template": {"metadata": {"labels": labels(owner.name, role)}, "spec": pod},
        },
    }


def role_service(owner: Owner, role: str) -> dict[str, Any]:
    """``<run>-<role>``: the role's stable address (gRPC 8000, metrics 9090)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, role),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner.name, role),
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }


def driver_job(run: ActiveRun, owner: Owner, defaults: Defaults, suspend: bool) -> dict[str, Any]:
    """``<run>-driver``: ``prefloop driver`` (resumes from the last checkpoint when there is
    one) with a pod failure policy that tells a stopped driver from a failed one."""
    spec = run.spec.roles.driver
    volumes, mounts = _volumes(run, owner, driver=True)
    args = [
        "driver", MANIFEST_PATH,
        "--connect", connect_value(run, owner.namespace, defaults),
        "--progress-configmap", f"{owner.namespace}/{child_name(owner.name, 'progress')}",
        "--metrics-port", str(METRICS_PORT),
    ]  # fmt: skip
    container = _container("driver", spec, run, defaults, args, mounts)
    container["ports"] = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    secret = run.spec.output.credentials_secret
    if secret is not None:
        container.setdefault("envFrom", []).append({"secretRef": {"name": secret.name}})
    pod = _pod_spec(spec, [container], volumes)
    pod["restartPolicy"] = "Never"  # the Job makes a new pod, which resumes
    pod["terminationGracePeriodSeconds"] = spec.termination_grace_period_seconds
    pod.setdefault("serviceAccountName", child_name(owner.name, "driver"))
    on_exit = {"containerName": "driver", "operator": "In"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(owner, "driver"),
        "spec": {
            "suspend": suspend,
            "backoffLimit": spec.backoff_limit,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {**on_exit, "values": [INVALID_EXIT_CODE]},
                    },
                    {"action": "Ignore", "onExitCodes": {**on_exit, "values": [STOPPED_EXIT_CODE]}},
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {"metadata": {"labels": labels(owner.name, "driver")}, "spec": pod},
        },
    }


def driver_access(run: ActiveRun, owner: Owner) -> list[dict[str, Any]]:
    """The driver's own ServiceAccount, allowed to get and patch its progress ConfigMap only
    (none when ``roles.driver.serviceAccountName`` names an account of the user's)."""
    if run.spec.roles.driver.service_account_name:
        return []
    name = child_name(owner.name, "driver")
    rule = {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [child_name(owner.name, "progress")],
        "verbs": ["get", "patch"],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(owner, "driver")},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(owner, "driver"),
            "rules": [rule],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(owner, "driver", name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
        },
    ]


def role_replicas(run: ActiveRun, role: str, *, suspended: bool, finished: bool) -> int:
    """Replicas a role's Deployment should have: 0 once the run is over, 0 for GPU roles of
    a suspended run (the GPUs are released), else the spec's."""
    spec = _role(run, role)
    if finished or (suspended and uses_gpu(spec)):
        return 0
    return spec.replicas
