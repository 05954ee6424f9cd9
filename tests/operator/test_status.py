"""The status is computed in one place from what was observed (pure function, no cluster):
phases and standard conditions for every situation the operator meets, sticky ends,
lastTransitionTime that moves only on a flip, Events per round and phase change, and the
lost-driver decision."""

from __future__ import annotations

from typing import Any

import pytest

from prefloop.crd import CONDITION_TYPES, ActiveRunStatus
from prefloop_operator.progress import Progress
from prefloop_operator.status import (
    JobView,
    Observed,
    changed,
    compute_status,
    driver_lost,
    events_between,
)

T0, T1, T2 = "2026-11-23T10:00:00Z", "2026-11-23T10:00:30Z", "2026-11-23T10:05:00Z"
RUNNING_JOB = JobView(active=1, ready=1, start_time=T0, created=T0)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def check_shape(status: dict[str, Any]) -> None:
    """Every status validates against the CRD's status model, one condition per type."""
    ActiveRunStatus.model_validate(status)
    assert sorted(conditions(status)) == sorted(CONDITION_TYPES)
    assert len(status["conditions"]) == len(CONDITION_TYPES)


def test_a_new_run_with_endpoints_waits_for_its_driver() -> None:
    status = compute_status(Observed(now=T0, budget=16))
    check_shape(status)
    assert (status["phase"], status["reason"]) == ("Pending", "DriverStarting")
    assert conditions(status)["Ready"]["reason"] == "EndpointsOnly"
    assert status["budget"] == 16 and status["round"] == 0 and status["startTime"] is None


def test_roles_not_ready_keep_the_run_pending_and_say_which() -> None:
    status = compute_status(Observed(now=T0, roles={"reward": (0, 1), "judge": (1, 1)}))
    check_shape(status)
    assert (status["phase"], status["reason"]) == ("Pending", "WaitingForRoles")
    ready = conditions(status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "RolesNotReady")
    assert "reward" in ready["message"] and "judge" not in ready["message"]


def test_a_running_driver_reports_round_and_step() -> None:
    progress = Progress(
        state="running",
        round=2,
        annotations_used=8,
        round_phase="Judging",
        reward_model_version=2,
        heldout_accuracy=0.625,
        heartbeat=T1,
    )
    status = compute_status(Observed(now=T1, job=RUNNING_JOB, progress=progress, generation=3))
    check_shape(status)
    assert status["phase"] == "Running"
    assert status["round"] == 2 and status["annotationsUsed"] == 8
    assert status["roundPhase"] == "Judging" and status["rewardModelVersion"] == 2
    assert status["heldoutAccuracy"] == 0.625
    assert status["startTime"] == T0  # from the Job, observed, not assumed
    progressing = conditions(status)["Progressing"]
    assert progressing["status"] == "True" and "round 3" in progressing["message"]
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["observedGeneration"] == 3


def test_last_transition_time_moves_only_when_a_condition_flips() -> None:
    first = compute_status(Observed(now=T0, job=RUNNING_JOB))
    again = compute_status(Observed(now=T1, job=RUNNING_JOB, previous=first))
    assert conditions(again)["Progressing"]["lastTransitionTime"] == T0
    assert not changed(first, again)  # only clocks moved: nothing to write
    suspended = compute_status(
        Observed(now=T2, suspend=True, job=JobView(suspended=True), previous=again)
    )
    assert conditions(suspended)["Progressing"]["lastTransitionTime"] == T2
    assert conditions(suspended)["Ready"]["lastTransitionTime"] == T0  # still True
    assert changed(again, suspended)


def test_suspend_is_two_steps_suspending_then_suspended() -> None:
    stopping = compute_status(Observed(now=T1, suspend=True, job=RUNNING_JOB))
    assert (stopping["phase"], stopping["reason"]) == ("Running", "Suspending")
    suspended_cond = conditions(stopping)["Suspended"]
    assert (suspended_cond["status"], suspended_cond["reason"]) == ("False", "Suspending")
    done = compute_status(Observed(now=T2, suspend=True, job=JobView(suspended=True)))
    check_shape(done)
    assert done["phase"] == "Suspended"
    assert conditions(done)["Suspended"]["status"] == "True"
    assert conditions(done)["Progressing"]["status"] == "False"


def test_success_is_observed_and_sticky() -> None:
    finished = Progress(
        state="finished",
        round=4,
        annotations_used=16,
        stop_reason="annotation budget exhausted",
        dataset_location="s3://b/r",
    )
    done = compute_status(
        Observed(now=T1, job=JobView(complete=True, start_time=T0), progress=finished)
    )
    check_shape(done)
    assert (done["phase"], done["reason"]) == ("Succeeded", "AnnotationBudgetExhausted")
    assert done["completionTime"] == T1 and done["datasetLocation"] == "s3://b/r"
    assert conditions(done)["Succeeded"]["status"] == "True"
    # later: the Job and the progress are gone (deleted by someone); the run stays Succeeded
    later = compute_status(Observed(now=T2, previous=done))
    assert later["phase"] == "Succeeded" and later["completionTime"] == T1
    assert later["round"] == 4 and later["datasetLocation"] == "s3://b/r"


@pytest.mark.parametrize(
    ("job", "progress", "reason", "words"),
    [
        (JobView(complete=True), Progress(state="stopped", round=2), "DriverExitedEarly",
         "without finishing"),
        (JobView(failure="BackoffLimitExceeded: 7 failed pods"),
         Progress(state="failed", error="DataError: prompts.jsonl:3: no prompt"), "DriverFailed",
         "prompts.jsonl:3"),
        (JobView(failure="PodFailurePolicy: exit code 2"), None, "DriverFailed", "exit code 2"),
    ],
)  # fmt: skip
def test_driver_failures_fail_the_run_with_a_reason(
    job: JobView, progress: Progress | None, reason: str, words: str
) -> None:
    status = compute_status(Observed(now=T1, job=job, progress=progress))
    check_shape(status)
    assert (status["phase"], status["reason"]) == ("Failed", reason)
    assert words in status["message"]
    failed = conditions(status)["Failed"]
    assert (failed["status"], failed["reason"]) == ("True", reason)


def test_an_invalid_spec_fails_naming_the_field_until_it_is_fixed() -> None:
    bad = compute_status(Observed(now=T0, invalid="spec.acquisition.method: unknown 'nope'"))
    check_shape(bad)
    assert (bad["phase"], bad["reason"]) == ("Failed", "InvalidSpec")
    assert bad["message"].startswith("spec.acquisition.method")
    assert conditions(bad)["Failed"]["message"] == bad["message"]
    fixed = compute_status(Observed(now=T1, previous=bad))
    assert fixed["phase"] == "Pending" and conditions(fixed)["Failed"]["status"] == "False"


def test_events_one_per_round_and_per_phase_change() -> None:
    old = {"phase": "Running", "round": 1}
    new = {"phase": "Succeeded", "reason": "PromptsExhausted", "message": "done", "round": 3,
           "annotationsUsed": 12, "heldoutAccuracy": 0.7}  # fmt: skip
    events = events_between(old, new)
    assert [(t, r) for t, r, _ in events] == [
        ("Normal", "RoundCompleted"),
        ("Normal", "RoundCompleted"),
        ("Normal", "Succeeded"),
    ]
    assert events[0][2] == "round 2 completed"
    assert events[1][2] == "round 3 completed: 12 annotations, held-out accuracy 0.700"
    failed = events_between({"phase": "Running"}, {"phase": "Failed", "reason": "X", "message": ""})
    assert failed == [("Warning", "Failed", "Running -> Failed (X): ")]
    assert events_between(new, new) == []


def test_a_driver_without_heartbeat_is_lost_only_while_it_should_run() -> None:
    stale = Progress(state="running", heartbeat=T0)
    assert driver_lost(Observed(now=T2, job=RUNNING_JOB, progress=stale), 60)
    fresh = Progress(state="running", heartbeat=T2)
    assert not driver_lost(Observed(now=T2, job=RUNNING_JOB, progress=fresh), 60)
    assert not driver_lost(Observed(now=T1, job=RUNNING_JOB, progress=stale), 60)
    suspended = JobView(suspended=True, active=1, ready=1, start_time=T0)
    assert not driver_lost(Observed(now=T2, job=suspended, progress=stale), 60)
    pending_pod = JobView(active=1, ready=0, start_time=T0)  # pulling its image: not lost
    assert not driver_lost(Observed(now=T2, job=pending_pod, progress=stale), 60)
    # a new driver Job after a resume counts from its own start, not the old heartbeat
    restarted = JobView(active=1, ready=1, start_time=T2, created=T2)
    assert not driver_lost(Observed(now=T2, job=restarted, progress=stale), 60)


def test_job_view_reads_the_job_controllers_conditions() -> None:
    job = {
        "metadata": {"creationTimestamp": T0},
        "spec": {"suspend": False},
        "status": {
            "active": 0,
            "failed": 3,
            "startTime": T0,
            "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"},
            ],
        },
    }  # fmt: skip
    view = JobView.of(job)
    assert view.failure == "BackoffLimitExceeded: Job has reached the specified backoff limit"
    assert view.failed == 3 and not view.complete and view.start_time == T0
