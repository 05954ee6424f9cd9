"""The operator reads the driver Job before the driver's progress report.

A driver writes its final progress ("finished") and then exits, so the Job turns Complete
after the report. Listing the progress ConfigMap first and the Job second can see a stale
"running" report next to a Complete Job when the driver finishes between the two list calls,
and the status function then calls the run Failed (DriverExitedEarly) for good. Reading the
Job first makes the report at least as new as the Job's state.
"""

from __future__ import annotations

from typing import Any

from prefloop_operator import children as ch
from prefloop_operator.handlers import observe_children
from prefloop_operator.progress import Progress
from prefloop_operator.status import JobView, Observed, compute_status

RUN = "race"
T0 = "2026-11-30T00:00:00Z"


class FinishingKube:
    """A cluster whose driver finishes right after the operator's first list call."""

    def __init__(self) -> None:
        self.lists: list[str] = []

    def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        finished = bool(self.lists)  # the driver finishes after the first call, whichever
        self.lists.append(kind)
        meta = {"namespace": namespace, "labels": {ch.RUN_LABEL: RUN}}
        if kind == "Job":
            conditions = [{"type": "Complete", "status": "True"}] if finished else []
            status = {"conditions": conditions, "active": 0 if finished else 1}
            return [{"metadata": {"name": ch.child_name(RUN, "driver"), **meta}, "status": status}]
        if kind == "ConfigMap":
            state = "finished" if finished else "running"
            data = Progress(state=state, round=4, stop_reason="budget exhausted").to_data()
            return [{"metadata": {"name": ch.child_name(RUN, "progress"), **meta}, "data": data}]
        return []


def test_a_driver_finishing_between_two_list_calls_never_fails_the_run() -> None:
    kube = FinishingKube()
    children = observe_children(kube, "default", RUN)  # type: ignore[arg-type]
    assert kube.lists[0] == "Job"
    job = JobView.of(children[("Job", ch.child_name(RUN, "driver"))])
    progress = Progress.from_data(children[("ConfigMap", ch.child_name(RUN, "progress"))]["data"])
    status = compute_status(Observed(now=T0, budget=16, job=job, progress=progress))
    assert status["phase"] != "Failed", status
