"""The operator drives a real run to Succeeded: ``prefloop operator`` (a subprocess) against the
Kubernetes emulator, the five role services on loopback (every role given as ``endpoint:``), a
real Tansu broker, and the test playing the kubelet for the driver Job (it runs the Job's own
command, args and env as a local subprocess, the PVC mapped to a directory).

One run, four rounds, and on the way: status, conditions and Events progress round by round;
suspend mid-run (the driver finishes its round and stops, nothing moves while suspended) and
resume; then the operator *and* the driver are SIGKILLed mid-round, after the round's judging
but before its checkpoint, with the driver's node "lost" (its Job still says running); the
restarted operator sees the stale heartbeat, replaces the Job, and the new driver resumes from
the last checkpoint: the judge's oracle labels every pair exactly once. Finally deleting the
ActiveRun runs the finalizer: topics and children gone, the dataset kept (on the volume and at
``output.uri``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import NS, Cluster, OperatorProcess, eventually
from kubelet import FakeKubelet
from services import role_services

from prefloop.crd import ActiveRunStatus
from prefloop.data.run_dataset import dataset_file
from prefloop.spec import parse_activerun
from prefloop.spec_cluster import SERVICE_ROLES
from prefloop_operator.topics import existing_run_topics

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NAME = "e2e"
PROMPTS = 20  # 4 held out, 16 to select from: 4 rounds of 4


def run_manifest(address: str | None, bootstrap: str, out: Path) -> dict[str, Any]:
    # the lost driver is replaced this long after its last heartbeat (a pod beats every 0.5 s,
    # its first beat within seconds of its start: 15 s leaves room on a loaded machine)
    roles: dict[str, Any] = {"driver": {"heartbeatTimeoutSeconds": 15, "backoffLimit": 3}}
    if address is not None:
        roles |= {role: {"endpoint": address} for role in SERVICE_ROLES}
    return {
        "apiVersion": "prefloop.dev/v1alpha1",
        "kind": "ActiveRun",
        "metadata": {"name": NAME},
        "spec": {
            "seed": 4,
            "batchSize": 4,
            "prompts": {"path": "data/prompts.jsonl"},
            "rewardModel": {
                "embedder": {"kind": "minilm", "maxLengthTokens": 64},
                "head": {"kind": "ensemble", "numHeads": 4, "hiddenDim": 32},
            },
            "acquisition": {"method": "delta_ucb"},
            "trainer": {"batchSize": 8, "epochsPerRound": 2, "maxStepsPerRound": 8},
            "output": {"dir": "runs/{name}", "formats": ["jsonl"], "uri": f"file://{out}"},
            "storage": {"claimName": "data", "subPath": "team-a"},
            "kafka": {"bootstrapServers": bootstrap},
            "roles": roles,
        },
    }


class StatusRecorder:
    """Polls the run's status in the background: what a `kubectl get ar -w` would have shown."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.seen: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            obj = self.cluster.kube.get("ActiveRun", NS, NAME)
            status = (obj or {}).get("status") or {}
            if status and (not self.seen or self.seen[-1] != (status["phase"], status["round"])):
                self.seen.append((status["phase"], status["round"]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def rbac_allows(call: tuple[str, str, str]) -> bool:
    """Whether a (group, resource, verb) call is allowed by a rule of RBAC.md's YAML blocks."""
    text = (REPO / "operators/prefloop_operator/RBAC.md").read_text()
    blocks = [yaml.safe_load(b.split("```")[0]) for b in text.split("```yaml")[1:]]
    rules = [r for block in blocks for rules in block.values() for r in rules]
    group, resource, verb = call
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules
    )


@contextlib.contextmanager
def explained(kubelet: FakeKubelet, operator: OperatorProcess) -> Iterator[None]:
    """A failed wait also shows the last driver pods (exit codes, log tails) and the operator's
    log tail: a driver that exits at once is diagnosed from the failure message alone."""
    try:
        yield
    except AssertionError as exc:
        log = operator.output().splitlines()[-15:] if operator.starts else []
        tail = "\n".join(f"    | {line}" for line in log)
        raise AssertionError(f"{exc}\n{kubelet.report()}\noperator log tail:\n{tail}") from exc


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_operator_drives_a_run_through_suspend_and_crashes_to_succeeded(
    cluster: Cluster, kafka_bootstrap: str, tmp_path: Path
) -> None:
    volume = tmp_path / "pvc-data"
    team = volume / "team-a"
    (team / "data").mkdir(parents=True)
    sample = (REPO / "data/alpacaeval/sample100.jsonl").read_text().splitlines()[:PROMPTS]
    (team / "data/prompts.jsonl").write_text("\n".join(sample) + "\n")
    out = tmp_path / "exported"
    services_run = parse_activerun(run_manifest(None, kafka_bootstrap, out))
    pod_env = {"KUBECONFIG": str(cluster.kubeconfig), "PREFLOOP_DRIVER_HEARTBEAT_SECONDS": "0.5"}
    operator = OperatorProcess(cluster, tmp_path / "operator-logs")
    (tmp_path / "operator-logs").mkdir()
    with (
        role_services(services_run, team, tmp_path / "state", kafka_bootstrap) as svc,
        FakeKubelet(cluster, {"data": volume}, tmp_path / "pods", pod_env) as kubelet,
    ):
        operator.start()
        recorder = StatusRecorder(cluster)
        try:
            with explained(kubelet, operator):
                cluster.apply(run_manifest(svc.address, kafka_bootstrap, out))
                topics = eventually(
                    lambda: (t := existing_run_topics(kafka_bootstrap, NAME)) and len(t) == 6 and t,
                    60,
                    what="the run's six topics",
                )
                assert all(t.startswith(f"prefloop.{NAME}.") for t in topics)

                # -- suspend after the first round --------------------------------------------
                eventually(
                    lambda: kubelet.healthy() and cluster.status(NAME)["round"] >= 1,
                    300,
                    what="round 1",
                )
                cluster.patch_spec(NAME, {"suspend": True})
                status = eventually(
                    lambda: (s := cluster.status(NAME))["phase"] == "Suspended" and s, 120
                )
                assert condition(status, "Suspended")["status"] == "True"
                assert condition(status, "Progressing")["status"] == "False"
                assert cluster.get("Job", f"{NAME}-driver")["spec"]["suspend"] is True  # type: ignore[index]
                (book,) = kubelet.books.values()
                assert book.exit_codes == [143]  # stopped after its round, not failed
                suspended_round, judged = status["round"], len(svc.judge.pairs)
                assert judged == status["annotationsUsed"] > 0
                time.sleep(3)  # several reconciles: nothing may move while suspended
                assert cluster.status(NAME)["round"] == suspended_round
                assert len(svc.judge.pairs) == judged and not kubelet.driver_running()

                # -- resume; kill the driver (node lost) and the operator mid-round -------------
                killed = threading.Event()

                def crash() -> None:
                    kubelet.lose_node()
                    operator.kill()
                    killed.set()

                svc.trainer.hook = crash  # the next round's Train: its pairs are judged already
                cluster.patch_spec(NAME, {"suspend": False})
                eventually(
                    lambda: kubelet.healthy() and killed.is_set(),
                    300,
                    what="the resumed driver reaching Train",
                )
                assert len(svc.judge.pairs) > judged  # the lost round was judged
                operator.start()

                status = eventually(
                    lambda: (
                        kubelet.healthy()
                        and (s := cluster.status(NAME))["phase"] in ("Succeeded", "Failed")
                        and s
                    ),
                    420,
                    what="the end",
                )
                assert status["phase"] == "Succeeded", status
                # Events are posted in the background: the last one may trail the status
                eventually(lambda: [e for e in cluster.events(NAME) if e["reason"] == "Succeeded"])
                events, seen = cluster.events(NAME), list(recorder.seen)

                # -- delete (the same operator): the finalizer removes topics and children ----
                cluster.kube.delete("ActiveRun", NS, NAME)
                eventually(
                    lambda: cluster.kube.get("ActiveRun", NS, NAME) is None, 120, what="deleted"
                )
        finally:
            recorder.stop()
            operator.stop()

    # -- the end as observed ------------------------------------------------------------------
    ActiveRunStatus.model_validate(status)
    assert condition(status, "Succeeded")["status"] == "True"
    assert condition(status, "Failed")["status"] == "False"
    assert condition(status, "Ready")["reason"] == "EndpointsOnly"
    assert status["round"] == 4 and status["driverRestarts"] == 1
    assert status["datasetLocation"] == f"file://{out}"
    assert status["startTime"] and status["completionTime"]

    # every pair in the dataset was judged exactly once, though one round ran twice
    run_dir = team / "runs" / NAME
    rows = [json.loads(line) for line in dataset_file(run_dir).read_text().splitlines()]
    ties = dataset_file(run_dir, part="ties")
    if ties.exists():
        rows += [json.loads(line) for line in ties.read_text().splitlines()]
    assert len(svc.judge.pairs) == len(set(svc.judge.pairs)) == len(rows)
    assert status["annotationsUsed"] == len(rows)
    assert len(kubelet.books) == 2  # the first Job (lost node) and its replacement
    assert sorted(b.exit_codes for b in kubelet.books.values()) == [[0], [143]]
    # each driver said at start whether it resumed, and the stopped one why it stopped
    first, *later = [pod.log.read_text() for pod in kubelet.pods]
    assert "no checkpoint, a fresh run; SIGTERM handler installed" in first
    assert "stopped before a new round; SIGTERM handler installed, stop requested" in first
    assert len(later) == 2 and all("resuming after round" in log for log in later), later

    # status and Events progressed round by round
    rounds = [r for _, r in seen]
    assert rounds == sorted(rounds) and rounds[-1] == 4
    assert ("Suspended", suspended_round) in seen
    completed = [
        e["message"].split(" completed")[0] for e in events if e["reason"] == "RoundCompleted"
    ]
    assert completed == [f"round {r}" for r in range(1, 5)], completed
    reasons = [e["reason"] for e in events]
    for reason in ("Running", "Suspended", "DriverLost", "DriverStarted", "Succeeded"):
        assert reason in reasons, reasons
    assert reasons.index("Suspended") < reasons.index("DriverLost") < reasons.index("Succeeded")

    # the dataset was copied to output.uri (not the working state)
    assert (out / dataset_file(Path("."))).read_text() == dataset_file(run_dir).read_text()
    assert (out / "summary.json").exists() and not (out / "checkpoints").exists()

    # -- deleted: topics and children gone, the dataset kept ---------------------------------
    assert existing_run_topics(kafka_bootstrap, NAME) == []
    for kind, component in [("ConfigMap", "manifest"), ("ConfigMap", "progress"),
                            ("Job", "driver"), ("ServiceAccount", "driver"), ("Role", "driver"),
                            ("RoleBinding", "driver")]:  # fmt: skip
        assert cluster.get(kind, f"{NAME}-{component}") is None, kind
    assert dataset_file(run_dir).exists() and (out / "summary.json").exists()

    # every call the operator made is allowed by the RBAC the chart reads from RBAC.md
    used = cluster.verbs_used(("kopf/", "prefloop-operator"))
    assert ("prefloop.dev", "activeruns/status", "patch") in used
    assert ("batch", "jobs", "delete") in used  # the lost driver's Job
    assert not [u for u in used if not rbac_allows(u)], [u for u in used if not rbac_allows(u)]
    driver_calls = cluster.verbs_used(("prefloop-driver",))
    assert driver_calls == {("", "configmaps", "patch")}  # its progress ConfigMap, nothing else
