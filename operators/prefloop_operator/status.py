"""The run's status, computed in one place from what the operator observes.

KubeRay's lesson: status written from several places, or assumed rather than observed, drifts
from reality (a run stuck "Running" after its driver was lost). Here one pure function,
:func:`compute_status`, takes everything observed in one reconcile (the spec's validity and
generation, the role Deployments' readiness, the driver Job's status, the driver's progress
report, the previous status) and returns the whole new status. The handlers write it only when
:func:`changed` says something other than a timestamp moved, and post the Events
:func:`events_between` finds.

The conditions are the standard ``metav1.Condition`` (``lastTransitionTime`` moves only when a
condition's status flips); ``phase`` is a summary derived from them. Succeeded and Failed are
sticky (an invalid spec is re-checked on every reconcile, so fixing it recovers the run).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prefloop_operator.progress import Progress, parse_rfc3339

TERMINAL = frozenset({"Succeeded", "Failed"})
CONDITION_ORDER = ("Ready", "Progressing", "Suspended", "Succeeded", "Failed")
INVALID_SPEC = "InvalidSpec"


@dataclass(frozen=True)
class JobView:
    """The parts of the driver Job's status that matter to the run."""

    suspended: bool = False
    """``spec.suspend`` of the Job."""
    active: int = 0
    ready: int = 0
    failed: int = 0
    complete: bool = False
    failure: str | None = None
    """The message of the Job's Failed condition, when it has failed for good."""
    start_time: str | None = None
    created: str | None = None

    @classmethod
    def of(cls, job: Mapping[str, Any]) -> JobView:
        """Read a Job object (as returned by the API server)."""
        status = job.get("status") or {}
        conds = {c.get("type"): c for c in status.get("conditions") or []}

        def true(kind: str) -> bool:
            return bool(conds.get(kind, {}).get("status") == "True")

        failure = None
        if true("Failed"):
            c = conds["Failed"]
            failure = f"{c.get('reason', 'Failed')}: {c.get('message', '')}".strip(": ")
        return cls(
            suspended=bool((job.get("spec") or {}).get("suspend")),
            active=int(status.get("active") or 0),
            ready=int(status.get("ready") or 0),
            failed=int(status.get("failed") or 0),
            complete=true("Complete"),
            failure=failure,
            start_time=status.get("startTime"),
            created=(job.get("metadata") or {}).get("creationTimestamp"),
        )


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile saw."""

    now: str
    generation: int = 1
    suspend: bool = False
    budget: int | None = None
    invalid: str | None = None
    """The validation error naming the field, when the spec is invalid."""
    roles: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Managed role -> (ready replicas, desired replicas)."""
    job: JobView | None = None
    progress: Progress | None = None
    previous: Mapping[str, Any] = field(default_factory=dict)
    driver_restarts: int = 0


def camel(text: str) -> str:
    """``annotation budget exhausted`` -> ``AnnotationBudgetExhausted`` (a condition reason)."""
    words = "".join(c if c.isalnum() else " " for c in text).split()
    return "".join(w[:1].upper() + w[1:] for w in words) or "Unknown"


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    true: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """``conditions`` with ``kind`` set; its ``lastTransitionTime`` moves only on a flip."""
    status = "True" if true else "False"
    old = next((c for c in conditions if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now
    new = {
        "type": kind,
        "status": status,
        "observedGeneration": generation,
        "lastTransitionTime": since,
        "reason": reason,
        "message": message,
    }
    return [c for c in conditions if c.get("type") != kind] + [new]


def _phase(obs: Observed) -> tuple[str, str, str]:
    """(phase, reason, message) from the observations."""
    prev = obs.previous
    if obs.invalid is not None:
        return "Failed", INVALID_SPEC, obs.invalid
    if prev.get("phase") in TERMINAL and prev.get("reason") != INVALID_SPEC:
        return prev["phase"], prev.get("reason") or prev["phase"], prev.get("message", "")
    job, progress = obs.job, obs.progress
    if job is not None and job.complete:
        if progress is not None and progress.state == "finished":
            why = progress.stop_reason or "finished"
            return "Succeeded", camel(why), f"{why}: {progress.annotations_used} annotations"
        return "Failed", "DriverExitedEarly", "the driver Job completed without finishing the run"
    if job is not None and job.failure is not None:
        detail = progress.error if progress is not None and progress.error else job.failure
        return "Failed", "DriverFailed", detail
    if obs.suspend:
        if job is None or job.active == 0:
            return "Suspended", "Suspended", "suspended; set spec.suspend: false to resume"
        return "Running", "Suspending", "finishing the current round before suspending"
    if job is not None and job.active > 0:
        done = progress.round if progress is not None else 0
        step = progress.round_phase if progress is not None else ""
        return (
            "Running",
            "RoundInProgress",
            f"round {done + 1} in progress" + (f": {step}" if step else ""),
        )
    waiting = sorted(r for r, (ready, want) in obs.roles.items() if ready < want)
    if waiting:
        return "Pending", "WaitingForRoles", f"waiting for roles to be ready: {', '.join(waiting)}"
    return "Pending", "DriverStarting", "waiting for the driver pod"


def compute_status(obs: Observed) -> dict[str, Any]:
    """The whole new status of the run (see the module doc)."""
    prev = dict(obs.previous)
    phase, reason, message = _phase(obs)
    progress = obs.progress
    g, now = obs.generation, obs.now
    conditions: list[dict[str, Any]] = list(prev.get("conditions") or [])

    def put(kind: str, true: bool, why: str, text: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, kind, true, why, text, generation=g, now=now)

    not_ready = sorted(r for r, (ready, want) in obs.roles.items() if ready < want)
    if not obs.roles:
        put("Ready", True, "EndpointsOnly", "every role is an endpoint of a running service")
    elif phase in TERMINAL:
        put("Ready", False, "RunOver", "the role Deployments are scaled to zero")
    elif not_ready:
        put("Ready", False, "RolesNotReady", f"not ready: {', '.join(not_ready)}")
    else:
        put("Ready", True, "AllRolesReady", f"ready: {', '.join(sorted(obs.roles))}")
    put("Progressing", phase == "Running", reason if phase == "Running" else phase, message)
    suspending = reason == "Suspending"
    put(
        "Suspended",
        phase == "Suspended",
        "Suspended" if phase == "Suspended" else ("Suspending" if suspending else "NotSuspended"),
        message if phase == "Suspended" or suspending else "",
    )
    for kind, other in (("Succeeded", "NotFinished"), ("Failed", "NoFailure")):
        put(
            kind,
            phase == kind,
            reason if phase == kind else other,
            message if phase == kind else "",
        )
    order = {kind: i for i, kind in enumerate(CONDITION_ORDER)}
    conditions.sort(key=lambda c: order.get(c["type"], len(order)))

    start = prev.get("startTime") or (obs.job.start_time if obs.job is not None else None)
    terminal_before = prev.get("phase") in TERMINAL
    done_at = prev.get("completionTime") if terminal_before else None
    status: dict[str, Any] = {
        "phase": phase,
        "reason": reason,
        "message": message,
        "round": progress.round if progress else int(prev.get("round") or 0),
        "roundPhase": progress.round_phase if progress and phase == "Running" else "",
        "annotationsUsed": (
            progress.annotations_used if progress else int(prev.get("annotationsUsed") or 0)
        ),
        "budget": obs.budget,
        "rewardModelVersion": (
            progress.reward_model_version if progress else int(prev.get("rewardModelVersion") or 0)
        ),
        "heldoutAccuracy": progress.heldout_accuracy if progress else prev.get("heldoutAccuracy"),
        "datasetLocation": (
            progress.dataset_location if progress else prev.get("datasetLocation", "")
        )
        or prev.get("datasetLocation", ""),
        "startTime": start,
        "completionTime": done_at or (now if phase in TERMINAL else None),
        "observedGeneration": g,
        "driverRestarts": obs.driver_restarts,
        "conditions": conditions,
    }
    if phase in TERMINAL and terminal_before:  # sticky: keep what the end recorded
        for key in ("round", "annotationsUsed", "rewardModelVersion", "datasetLocation"):
            status[key] = prev.get(key, status[key])
    return status


def _without_times(status: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k not in {"completionTime"}}
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    return out


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether anything but a timestamp differs (KubeRay: never write a status for a clock)."""
    return _without_times(old) != _without_times(new)


def events_between(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events a status change deserves: one per completed round
    and one per phase change."""
    events: list[tuple[str, str, str]] = []
    before, after = int(old.get("round") or 0), int(new.get("round") or 0)
    for r in range(before + 1, after + 1):
        detail = ""
        if r == after:
            acc = new.get("heldoutAccuracy")
            acc_txt = f", held-out accuracy {acc:.3f}" if isinstance(acc, float) else ""
            detail = f": {new.get('annotationsUsed', 0)} annotations{acc_txt}"
        events.append(("Normal", "RoundCompleted", f"round {r} completed{detail}"))
    if old.get("phase") != new.get("phase"):
        kind = "Warning" if new["phase"] == "Failed" else "Normal"
        text = f"{old.get('phase') or 'New'} -> {new['phase']} ({new['reason']}): {new['message']}"
        events.append((kind, new["phase"], text))
    return events


def driver_lost(obs: Observed, timeout_seconds: float) -> bool:
    """Whether a running driver's heartbeat is older than ``timeout_seconds`` (a lost node, a
    hung pod): its Job must be replaced so a new pod resumes from the last checkpoint."""
    job = obs.job
    if job is None or job.suspended or job.complete or job.failure or job.ready == 0:
        return False
    now = parse_rfc3339(obs.now)
    beats = [
        parse_rfc3339(obs.progress.heartbeat if obs.progress else None),
        parse_rfc3339(job.start_time),
        parse_rfc3339(job.created),
    ]
    last = max((b for b in beats if b is not None), default=None)
    if now is None or last is None:
        return False
    return (now - last) > datetime.timedelta(seconds=timeout_seconds)
