"""Two operator replicas in one kopf peering: the lower priority one pauses and never reconciles
a run while the other lives; when the active one stops, the other takes over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import NS, Cluster, OperatorProcess, eventually

PEERING = ["--peering", "prefloop", "--namespace", NS]


def manifest(name: str) -> dict[str, object]:
    return {
        "apiVersion": "prefloop.dev/v1alpha1",
        "kind": "ActiveRun",
        "metadata": {"name": name},
        "spec": {"batchSize": 4},
    }


def paused(op: OperatorProcess) -> bool:
    """Whether the replica is paused: kopf starts a mandatory peering paused, and logs each
    change after that."""
    log = op.output()
    return log.rfind("Pausing operations") >= log.rfind("Resuming operations")


@pytest.fixture
def replicas(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    high = OperatorProcess(cluster, tmp_path / "high")
    low = OperatorProcess(cluster, tmp_path / "low")
    for op in (high, low):
        op.log_dir.mkdir()
    high.start(*PEERING, "--priority", "200")
    low.start(*PEERING, "--priority", "100")
    try:
        yield high, low
    finally:
        low.stop()
        high.stop()


def test_only_the_highest_priority_replica_reconciles(
    cluster: Cluster, replicas: tuple[OperatorProcess, OperatorProcess]
) -> None:
    high, low = replicas
    peers = eventually(
        lambda: (
            (status := (cluster.get("KopfPeering", "prefloop") or {}).get("status") or {})
            and len(status) == 2
            and status
        ),
        90,
        what="both replicas in the peering object (made by the operator)",
    )
    assert sorted(p["priority"] for p in peers.values()) == [100, 200]
    eventually(lambda: paused(low), 90, what="low paused")

    cluster.apply(manifest("peer-one"))
    eventually(lambda: cluster.status("peer-one").get("phase"), 90, what="reconciled")
    eventually(lambda: "[default/peer-one]" in high.output(), what="high reconciled it")
    assert "peer-one" not in low.output()

    resumed = low.output().count("Resuming operations")
    high.stop()  # a rollout: the active replica leaves the peering on SIGTERM
    eventually(
        lambda: low.output().count("Resuming operations") > resumed, 90, what="low takes over"
    )
    cluster.apply(manifest("peer-two"))
    eventually(lambda: cluster.get("ConfigMap", "peer-two-manifest"), 90, what="low reconciles")
    eventually(lambda: "[default/peer-two]" in low.output(), what="low reconciled it")
