"""The kopf handlers: reconcile every ActiveRun, clean up after a deleted one.

One function, :func:`reconcile`, does all the work, and every trigger calls it: the
create/resume/spec-update events (so a change acts at once) and a timer (level-based: whatever
happened meanwhile, a lost driver, a Job that finished, a role that became ready, is observed
on the next tick). Runs of one object are serialised by a lock in its kopf memo. Each pass:

1. reads the ActiveRun afresh and validates its spec with the typed spec (an invalid spec
   gets phase Failed, reason ``InvalidSpec`` and the message naming the field, and a
   ``kopf.PermanentError`` from the event handlers: retrying cannot fix it);
2. ensures the children (:mod:`prefloop_operator.children`), patching one only when its
   spec hash changed, and the run's Kafka topics (:mod:`prefloop_operator.topics`; a broker
   that cannot be reached is a ``kopf.TemporaryError``, retried with backoff);
3. drives the driver Job: created once the roles serve, suspended and resumed with
   ``spec.suspend`` (GPU Deployments scale to zero while suspended), replaced when its
   heartbeat is lost (the new pod resumes from the last checkpoint), never touched once the
   run is over;
4. computes the status from what it observed (:func:`prefloop_operator.status.compute_status`),
   writes it only when it changed, and posts an Event per completed round and phase change.

Deleting an ActiveRun runs the finalizer :func:`on_delete`: the run's topics and children are
deleted; the dataset (on ``spec.storage`` or at ``output.uri``) is kept.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, cast

import kopf
from kubernetes.client.rest import ApiException

from prefloop.crd import GROUP, PLURAL, VERSION
from prefloop.spec import ActiveRun, SpecError, parse_activerun
from prefloop.spec_cluster import SERVICE_ROLES
from prefloop_operator import children as ch
from prefloop_operator.kube import Kube, load_config
from prefloop_operator.post_training import ensure_post_training
from prefloop_operator.progress import Progress, now_rfc3339
from prefloop_operator.status import (
    INVALID_SPEC,
    TERMINAL,
    JobView,
    Observed,
    changed,
    compute_status,
    driver_lost,
    events_between,
)
from prefloop_operator.topics import TopicsError, delete_run_topics, ensure_run_topics

RECONCILE_SECONDS = float(os.environ.get("PREFLOOP_RECONCILE_SECONDS", "10"))
"""Period of the level-based reconcile timer (tests shorten it)."""
FINALIZER = f"{GROUP}/finalizer"
Logger = logging.Logger | logging.LoggerAdapter[Any]
LOG = logging.getLogger("prefloop_operator")
RETRY_SECONDS = 10.0
REPLACED_KINDS = frozenset({"ConfigMap", "Deployment", "Role", "RoleBinding"})
"""Children updated by a PUT of the whole object (a setting dropped from the spec goes away);
the others are merge-patched (a Service keeps its allocated clusterIP)."""
TOPIC_DELETE_RETRIES = 30
"""The finalizer retries an unreachable broker this many times, then gives up on the topics
(with a Warning Event) so the ActiveRun can still be deleted."""


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: Logger, **_: Any) -> None:
    """kopf's bookkeeping in ``prefloop.dev`` annotations (never in our typed status), our
    finalizer name, no cluster scanning (the resource is known), the API client's config."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.scanning.disabled = True  # no cluster-wide namespace/CRD listing needed
    settings.posting.level = logging.WARNING  # our own Events are posted explicitly
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8
    load_config()
    if not settings.peering.standalone and settings.peering.mandatory:
        ensure_peering_object(settings.peering.name, settings.peering.clusterwide, logger)


def ensure_peering_object(name: str, clusterwide: bool, logger: Logger) -> None:
    """Create the kopf peering object when it is missing (kopf pauses without it)."""
    kube = Kube()
    kind = "ClusterKopfPeering" if clusterwide else "KopfPeering"
    body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
    namespaces = [None] if clusterwide else _served_namespaces()
    for ns in namespaces:
        plural = "clusterkopfpeerings" if clusterwide else "kopfpeerings"
        path = (
            f"/apis/kopf.dev/v1/{plural}"
            if ns is None
            else (f"/apis/kopf.dev/v1/namespaces/{ns}/{plural}")
        )
        try:
            kube.call("POST", path, body=body | {"metadata": {"name": name, "namespace": ns}})
        except ApiException as exc:
            if exc.status != 409:
                logger.warning(f"cannot create the {kind} {name!r} ({exc.status}): create it")


def _served_namespaces() -> list[str]:
    raw = os.environ.get("PREFLOOP_OPERATOR_NAMESPACES", "")
    return [ns for ns in raw.split(",") if ns]


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def on_spec(body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any) -> None:
    """A new, resumed or changed ActiveRun: reconcile now."""
    reconcile(body, memo, logger, permanent_errors=True)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECONCILE_SECONDS)
def on_timer(body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any) -> None:
    """Level-based reconcile: observe what changed since the last pass."""
    try:
        reconcile(body, memo, logger, permanent_errors=False)
    except kopf.TemporaryError as exc:
        logger.warning(f"reconcile postponed: {exc}")  # the next tick retries


def reconcile(body: kopf.Body, memo: kopf.Memo, logger: Logger, *, permanent_errors: bool) -> None:
    """One pass over one ActiveRun (see the module doc); one at a time per object."""
    lock = memo.setdefault("reconcile_lock", threading.Lock())
    with lock:
        started = time.monotonic()
        try:
            meta = body["metadata"]
            _reconcile(Kube(), meta["namespace"], meta["name"], memo, permanent_errors)
            took = time.monotonic() - started
            LOG.debug(f"[{meta['namespace']}/{meta['name']}] reconciled in {took:.3f}s")
        except ApiException as exc:
            if exc.status in (409, 422, 429) or (exc.status or 500) >= 500:
                raise kopf.TemporaryError(
                    f"API server: {exc.status} {exc.reason}", delay=2
                ) from exc
            raise


def _reconcile(
    kube: Kube, namespace: str, name: str, memo: kopf.Memo, permanent_errors: bool
) -> None:
    live = kube.get("ActiveRun", namespace, name)
    if live is None or live["metadata"].get("deletionTimestamp"):
        return
    previous = dict(live.get("status") or {})
    generation = int(live["metadata"].get("generation") or 1)
    now = now_rfc3339()
    try:
        manifest = {
            "apiVersion": live.get("apiVersion"),
            "kind": live.get("kind"),
            "metadata": {"name": name, "namespace": namespace},
            "spec": live.get("spec") or {},
        }
        run = parse_activerun(manifest, source=f"ActiveRun {namespace}/{name}")
    except SpecError as exc:
        message = str(exc).split("invalid ActiveRun\n", 1)[-1]
        _publish(
            kube,
            live,
            compute_status(
                Observed(now=now, generation=generation, previous=previous, invalid=message)
            ),
        )
        if permanent_errors:
            raise kopf.PermanentError(message) from exc
        return

    owner = ch.Owner.of(live)
    defaults = ch.Defaults.from_env()
    over = previous.get("phase") in TERMINAL and previous.get("reason") != INVALID_SPEC
    suspend = run.spec.suspend
    children = observe_children(kube, namespace, name)
    for obj in (ch.manifest_configmap(run, owner), *ch.driver_access(run, owner)):
        ensure(kube, obj, children)
    progress_key = ("ConfigMap", ch.child_name(name, "progress"))
    if progress_key not in children:  # the driver's to write: created once, never overwritten
        kube.create(ch.progress_configmap(owner))
    if not over and memo.get("topics_of") != owner.uid:
        _ensure_topics(run, defaults)
        memo["topics_of"] = owner.uid  # once per operator process and run: idempotent anyway
    roles = _ensure_roles(kube, run, owner, defaults, children, suspended=suspend, finished=over)
    progress = Progress.from_data((children.get(progress_key) or {}).get("data"))
    job = children.get(("Job", ch.child_name(name, "driver")))
    observed = Observed(
        suspend=suspend,
        budget=run.spec.budget.max_annotations,
        roles=roles,
        job=JobView.of(job) if job else None,
        progress=progress,
        driver_restarts=int(previous.get("driverRestarts") or 0),
        now=now,
        generation=generation,
        previous=previous,
    )
    if not over:
        observed = _drive(kube, run, owner, defaults, observed, live)
    status = compute_status(observed)
    _publish(kube, live, status)
    if status["phase"] in TERMINAL and not over:  # release the GPUs (and the CPUs) now
        children = observe_children(kube, namespace, name)
        _ensure_roles(kube, run, owner, defaults, children, suspended=suspend, finished=True)
    if ensure_post_training(kube, run, owner, defaults, status["phase"], children):
        _event(live, "Normal", "PostTrainingStarted", f"{ch.child_name(name, 'post-training')}")


# The driver Job first: its progress ConfigMap, read after it, is then at least as new as the
# Job's state (a driver writes "finished" before it exits), never a stale report beside a
# Complete Job, which would fail the run for good (tests/operator/test_observe_order.py).
CHILD_KINDS = ("Job", "ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service")


def observe_children(kube: Kube, namespace: str, run: str) -> dict[tuple[str, str], Any]:
    """Every child of the run, by (kind, name): one labelled list per kind."""
    selector = f"{ch.RUN_LABEL}={run}"
    return {
        (kind, obj["metadata"]["name"]): obj
        for kind in CHILD_KINDS
        for obj in kube.list(kind, namespace, selector)
    }


def _drive(
    kube: Kube, run: ActiveRun, owner: ch.Owner, defaults: ch.Defaults, obs: Observed, live: Any
) -> Observed:
    """Create, suspend, resume or replace the driver Job; returns the updated observation."""
    name, ns = owner.name, owner.namespace
    job_name = ch.child_name(name, "driver")
    job = obs.job
    if job is None:
        ready = all(have >= want for have, want in obs.roles.values())
        if obs.suspend or not ready:
            return obs
        made = kube.create(ch.driver_job(run, owner, defaults, suspend=False))
        if obs.progress is not None:  # there was a driver before: this one resumes
            resumes = f"a new driver Job resumes after round {obs.progress.round}"
            _event(live, "Normal", "DriverStarted", resumes)
        return _with(obs, job=JobView.of(made) if made else None)
    if job.complete or job.failure is not None:
        return obs
    if job.suspended != obs.suspend:
        patched = kube.patch("Job", ns, job_name, {"spec": {"suspend": obs.suspend}})
        return _with(obs, job=JobView.of(patched))
    spec = run.spec.roles.driver
    if driver_lost(obs, spec.heartbeat_timeout_seconds):
        kube.delete("Job", ns, job_name)
        restarts = obs.driver_restarts + 1
        beat = obs.progress.heartbeat if obs.progress else "never"
        lost = (
            f"no heartbeat for {spec.heartbeat_timeout_seconds}s (last {beat}, Job started "
            f"{job.start_time}): replacing the driver Job (restart {restarts}); it resumes from "
            "the last checkpoint"
        )
        _event(live, "Warning", "DriverLost", lost)
        if restarts > spec.backoff_limit:
            failure = (
                f"driver lost {restarts} times (roles.driver.backoffLimit {spec.backoff_limit})"
            )
            return _with(obs, job=JobView(failure=failure), driver_restarts=restarts)
        return _with(obs, job=None, driver_restarts=restarts)
    return obs


def _with(obs: Observed, **changes: Any) -> Observed:
    from dataclasses import replace

    return replace(obs, **changes)


def _ensure_topics(run: ActiveRun, defaults: ch.Defaults) -> None:
    bootstrap = ch.kafka_bootstrap(run, defaults)
    if not bootstrap:
        return
    try:
        ensure_run_topics(
            bootstrap,
            run.metadata.name,
            partitions=run.spec.kafka.partitions,
            replication_factor=run.spec.kafka.replication_factor,
        )
    except TopicsError as exc:
        raise kopf.TemporaryError(f"the run's topics: {exc}", delay=RETRY_SECONDS) from exc


def _ensure_roles(
    kube: Kube,
    run: ActiveRun,
    owner: ch.Owner,
    defaults: ch.Defaults,
    children: dict[tuple[str, str], Any],
    *,
    suspended: bool,
    finished: bool,
) -> dict[str, tuple[int, int]]:
    """Deployments + Services of the managed roles; (ready, desired) replicas per role. A role
    that became an ``endpoint:`` loses its Deployment and Service."""
    observed: dict[str, tuple[int, int]] = {}
    managed = ch.managed_roles(run)
    for role in managed:
        want = ch.role_replicas(run, role, suspended=suspended, finished=finished)
        deployment = ensure(kube, ch.role_deployment(run, role, owner, defaults, want), children)
        ensure(kube, ch.role_service(owner, role), children)
        ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        observed[role] = (ready, want)
    for (kind, name), obj in children.items():
        component = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        stale = component in SERVICE_ROLES and component not in managed
        if kind in ("Deployment", "Service") and stale:
            kube.delete(kind, owner.namespace, name)
    return observed


def ensure(
    kube: Kube, desired: dict[str, Any], children: dict[tuple[str, str], Any]
) -> dict[str, Any] | None:
    """Create the child, or update it when its spec hash differs; returns it as it is now."""
    desired = ch.with_spec_hash(desired)
    meta = desired["metadata"]
    kind, ns, name = desired["kind"], meta["namespace"], meta["name"]
    current = children.get((kind, name))
    if current is None:
        return kube.create(desired) or kube.get(kind, ns, name)
    have = (current["metadata"].get("annotations") or {}).get(ch.SPEC_HASH)
    if have == meta["annotations"][ch.SPEC_HASH]:
        return dict(current)
    if kind in REPLACED_KINDS:
        return kube.replace(desired, current["metadata"]["resourceVersion"])
    return kube.patch(kind, ns, name, desired)


def _publish(kube: Kube, live: dict[str, Any], status: dict[str, Any]) -> None:
    """Write the status when it changed; post the Events the change deserves."""
    previous = live.get("status") or {}
    meta = live["metadata"]
    if changed(previous, status):
        ns, name = meta["namespace"], meta["name"]
        kube.patch("ActiveRun", ns, name, {"status": status}, subresource="status")
    for kind, reason, message in events_between(previous, status):
        _event(live, kind, reason, message)


def _event(obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
    """A Kubernetes Event about the ActiveRun (posted by kopf in the background), also logged."""
    meta = obj["metadata"]
    level = logging.WARNING if kind == "Warning" else logging.INFO
    LOG.log(level, f"[{meta['namespace']}/{meta['name']}] {reason}: {message}")
    kopf.event(kopf.Body(cast(kopf.RawBody, obj)), type=kind, reason=reason, message=message)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def on_delete(body: kopf.Body, memo: kopf.Memo, retry: int, logger: Logger, **_: Any) -> None:
    """The finalizer: delete the run's topics and children; keep the dataset."""
    lock = memo.setdefault("reconcile_lock", threading.Lock())
    name, ns = body["metadata"]["name"], body["metadata"]["namespace"]
    kafka = ((body.get("spec") or {}).get("kafka") or {}).get("bootstrapServers")
    bootstrap = kafka or ch.Defaults.from_env().kafka_bootstrap
    with lock:
        if bootstrap:
            try:
                deleted = delete_run_topics(bootstrap, name)
                logger.info(f"deleted topics {deleted}")
            except TopicsError as exc:
                if retry < TOPIC_DELETE_RETRIES:
                    raise kopf.TemporaryError(str(exc), delay=RETRY_SECONDS) from exc
                kopf.warn(body, reason="TopicsNotDeleted", message=f"gave up on the topics: {exc}")
        delete_children(Kube(), ns, name)


def delete_children(kube: Kube, namespace: str, run: str) -> list[str]:
    """Delete every child of the run (the ownerReferences would too, but a finalizer must
    not depend on the garbage collector); the PVC and output.uri are never touched."""
    gone = []
    targets = [("Job", "driver"), ("Job", "post-training")]
    targets += [(kind, role) for role in SERVICE_ROLES for kind in ("Deployment", "Service")]
    targets += [("ConfigMap", "manifest"), ("ConfigMap", "progress")]
    targets += [(kind, "driver") for kind in ("RoleBinding", "Role", "ServiceAccount")]
    for kind, component in targets:
        if kube.delete(kind, namespace, ch.child_name(run, component)):
            gone.append(f"{kind}/{ch.child_name(run, component)}")
    return gone
