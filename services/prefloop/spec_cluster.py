"""The cluster-only parts of the ActiveRun spec: storage, per-role pods, the run's broker.

``prefloop run`` on a laptop ignores every field here; the operator
(``operators/prefloop_operator``) reads them to build the run's children:

- ``spec.storage``: an existing PersistentVolumeClaim (and a sub-directory of it) that holds
  the prompts, the feature cache, the checkpoints and the dataset. The operator mounts it at
  :data:`DATA_MOUNT_PATH` and makes that the working directory of every pod, so the relative
  paths of the manifest (``prompts.path``, ``output.dir``, the services' ``state/``) resolve on
  the volume and survive a pod restart;
- ``spec.roles``: one entry per role (generation, reward, acquisition, judge, trainer) with the
  pod settings of its Deployment (image, replicas, resources including ``nvidia.com/gpu``,
  nodeSelector, tolerations, affinity, priority and runtime class, env), or ``endpoint:`` to use
  an already running service instead; ``roles.driver`` shapes the Job that runs the rounds;
- ``spec.kafka``: the broker of the run's data plane (topics ``prefloop.<run>.<kind>``).

Quantities follow Kubernetes: ``cpu: 500m``, ``memory: 4Gi``, ``nvidia.com/gpu: 1`` (an int or a
string); the operator copies the pod settings into the pod templates unchanged.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from prefloop.spec_base import SpecModel

SERVICE_ROLES: tuple[str, ...] = ("generation", "reward", "acquisition", "judge", "trainer")
"""The roles that run as gRPC services (``prefloop serve ROLE``); the driver runs the rounds."""
STATEFUL_ROLES: tuple[str, ...] = ("judge", "trainer")
"""Roles that own durable state (the verdict log, the model): one replica each."""
DATA_MOUNT_PATH = "/var/lib/prefloop"
"""Where the operator mounts ``spec.storage``; the working directory of every pod of a run."""
MANIFEST_MOUNT_PATH = "/etc/prefloop"
"""Where the manifest ConfigMap is mounted (``/etc/prefloop/activerun.yaml``)."""
PROMPTS_MOUNT_PATH = "/etc/prefloop-prompts"
"""Where ``prompts.configMap`` is mounted; the operator points ``prompts.path`` at the key."""

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = int | Annotated[str, Field(pattern=QUANTITY_PATTERN)]
"""A Kubernetes resource quantity: ``2``, ``500m``, ``16Gi``."""
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
ENDPOINT_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:[0-9]{1,5}$"
K8sName = Annotated[str, Field(min_length=1, max_length=253, pattern=K8S_NAME_PATTERN)]


class ResourcesSpec(SpecModel):
    """Container resources, as in a Kubernetes ResourceRequirements."""

    limits: dict[str, Quantity] = {}
    """Upper bounds, e.g. `cpu: 4`, `memory: 16Gi`, `nvidia.com/gpu: 1` (GPUs go in limits)."""
    requests: dict[str, Quantity] = {}
    """What the scheduler reserves, e.g. `cpu: 2`, `memory: 8Gi`."""


class TolerationSpec(SpecModel):
    """A Kubernetes toleration (e.g. of the taint of a GPU node pool)."""

    key: str | None = None
    """Taint key (e.g. `nvidia.com/gpu`); null with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """`Equal` matches `value`; `Exists` matches any value."""
    value: str | None = None
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; null tolerates every effect."""
    toleration_seconds: Annotated[int, Field(ge=0)] | None = None
    """For NoExecute: how long the pod stays bound after the taint appears."""


class ObjectRef(SpecModel):
    """A reference to a ConfigMap or Secret in the run's namespace."""

    name: K8sName
    """Object name."""
    optional: bool = False
    """Start the pod even when the object is missing."""


class KeyRef(SpecModel):
    """One key of a ConfigMap in the run's namespace."""

    name: K8sName
    """ConfigMap name."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    """Key whose value is the file (e.g. `prompts.jsonl`; the suffix tells the format)."""


class EnvVarSpec(SpecModel):
    """An environment variable of the role's container."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")]
    """Variable name."""
    value: str | None = None
    """Literal value."""
    value_from: dict[str, Any] | None = None
    """A Kubernetes EnvVarSource (`secretKeyRef`, `configMapKeyRef`, `fieldRef`, ...)."""


class EnvFromSpec(SpecModel):
    """All keys of a ConfigMap or Secret as environment variables."""

    config_map_ref: ObjectRef | None = None
    """The ConfigMap."""
    secret_ref: ObjectRef | None = None
    """The Secret."""
    prefix: str = ""
    """Prepended to every key."""


class PodSettings(SpecModel):
    """What a role's pods look like: image, resources and where they may be scheduled."""

    image: str | None = None
    """Container image; null takes the operator's default (`PREFLOOP_IMAGE`, set by the chart).
    Generation on vLLM needs an image built with the `vllm` extra."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Kubernetes image pull policy; null keeps the cluster default."""
    resources: ResourcesSpec = ResourcesSpec()
    """Requests and limits; `nvidia.com/gpu` in limits puts the role on a GPU."""
    node_selector: dict[str, str] = {}
    """Node labels the pods require (e.g. a GPU node pool's label)."""
    tolerations: list[TolerationSpec] = []
    """Taints the pods tolerate (e.g. `nvidia.com/gpu:NoSchedule` of a GPU pool)."""
    affinity: dict[str, Any] = {}
    """A Kubernetes Affinity (nodeAffinity, podAffinity, podAntiAffinity), copied as is."""
    priority_class_name: str | None = None
    """PriorityClass of the pods."""
    runtime_class_name: str | None = None
    """RuntimeClass of the pods (e.g. `nvidia`)."""
    service_account_name: str | None = None
    """ServiceAccount of the pods; null: the namespace default (the driver: its own account,
    created by the operator, that may only patch the run's progress ConfigMap)."""
    env: list[EnvVarSpec] = []
    """Extra environment variables."""
    env_from: list[EnvFromSpec] = []
    """ConfigMaps / Secrets whose keys become environment variables."""


class RoleSpec(PodSettings):
    """One role service of the run: a Deployment + Service, or an `endpoint` already running."""

    replicas: Annotated[int, Field(ge=0, le=64)] = 1
    """Pods of the role's Deployment (suspend scales GPU roles to 0). Roles that keep state
    (judge, trainer) must stay at 1."""
    endpoint: Annotated[str, Field(pattern=ENDPOINT_PATTERN)] | None = None
    """`HOST:PORT` of an already running `prefloop serve ROLE` for this run: no Deployment is
    created and the pod settings above are ignored."""


class DriverSpec(PodSettings):
    """The Job that runs the rounds (`prefloop driver`) against the role services."""

    backoff_limit: Annotated[int, Field(ge=0, le=100)] = 6
    """Failed driver pods before the run is Failed (each new pod resumes from the last
    checkpoint; a pod stopped by suspend does not count)."""
    termination_grace_period_seconds: Annotated[int, Field(ge=1)] = 900
    """How long a stopping driver (suspend, deletion, eviction) may take to finish its round."""
    heartbeat_timeout_seconds: Annotated[int, Field(ge=2)] = 300
    """A running driver whose heartbeat is older than this is presumed lost: the operator
    replaces its Job, and the new pod resumes from the last checkpoint."""


class RolesSpec(SpecModel):
    """Per role: where its pods run, or the endpoint of a shared service."""

    generation: RoleSpec = RoleSpec()
    """The generation service (the response pool; vLLM on GPUs for live models)."""
    reward: RoleSpec = RoleSpec()
    """The reward-model service (embedder + uncertainty head)."""
    acquisition: RoleSpec = RoleSpec()
    """The acquisition service (selection rules; CPU)."""
    judge: RoleSpec = RoleSpec()
    """The judge service (keep 1 replica: it owns the verdict log)."""
    trainer: RoleSpec = RoleSpec()
    """The trainer service (keep 1 replica)."""
    driver: DriverSpec = DriverSpec()
    """The driver Job."""

    @model_validator(mode="after")
    def _stateful_roles_run_once(self) -> RolesSpec:
        """Mirrored by a CEL rule of the CRD (``prefloop.crd.cel_rules``)."""
        for role in STATEFUL_ROLES:
            spec: RoleSpec = getattr(self, role)
            if spec.endpoint is None and spec.replicas > 1:
                raise ValueError(
                    f"roles.{role}.replicas: the {role} keeps state (its log or model); run one "
                    f"replica, got {spec.replicas}"
                )
        return self


class StorageSpec(SpecModel):
    """The volume a run's files live on in a cluster."""

    claim_name: K8sName
    """An existing PersistentVolumeClaim in the run's namespace. ReadWriteMany when the roles
    run on several nodes (they share the feature cache and the trainer's checkpoints)."""
    sub_path: Annotated[str, Field(max_length=1024)] = ""
    """Directory inside the volume (relative, no `..`); empty: its root."""

    @field_validator("sub_path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if v.startswith("/") or re.search(r"(^|/)\.\.(/|$)", v):
            raise ValueError(f"{v!r} must be a relative path inside the volume, without '..'")
        return v


class KafkaSpec(SpecModel):
    """The broker of the run's data plane (cluster mode)."""

    bootstrap_servers: (
        Annotated[str, Field(pattern=r"^[^\s,]+:[0-9]+(,[^\s,]+:[0-9]+)*$")] | None
    ) = None
    """`HOST:PORT[,HOST:PORT...]`; null takes the operator's default (`PREFLOOP_KAFKA_BOOTSTRAP`),
    and with neither the run has no data plane (the services talk gRPC only)."""
    partitions: Annotated[int, Field(ge=1, le=1024)] = 4
    """Partitions of each topic the operator creates."""
    replication_factor: Annotated[int, Field(ge=1, le=16)] = 1
    """Replicas of each topic the operator creates."""


class SecretRef(SpecModel):
    """A Secret in the run's namespace."""

    name: K8sName
    """Secret name."""
