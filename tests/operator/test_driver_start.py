"""``prefloop driver`` is alive before its slow imports: its SIGTERM handler is installed and its
first heartbeat sent before the engine (torch, scipy, the acquisition registry) is imported, so a
pod suspended or evicted while it starts stops cleanly with 143, and the operator does not take a
slowly starting driver for a lost one.

The driver runs as a real subprocess against a minimal Kubernetes API (an HTTP server that
accepts patches of the progress ConfigMap). When the first patch arrives the driver is blocked
on it, so what its process has loaded at that moment is read from ``/proc/PID/maps``; the test
then sends SIGTERM, as the kubelet does when the Job is suspended.

(Before this was fixed, the driver imported the engine first: 8-25 s on a loaded machine with
no heartbeat and no handler, so a SIGTERM killed it outright with an empty log, and a heartbeat
timeout shorter than its imports replaced every driver as lost.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cluster import write_kubeconfig

from prefloop_operator.progress import STOPPED_EXIT_CODE

REPO = Path(__file__).resolve().parents[2]
PROGRESS = "/api/v1/namespaces/default/configmaps/run-progress"


class ProgressApi:
    """Records every progress patch; on the first one, what the driver had loaded, then
    SIGTERM to it (before answering: the driver waits for the answer)."""

    def __init__(self) -> None:
        self.patches: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.loaded_at_first_beat: list[str] = []
        self.pid = 0
        self.first = threading.Event()

    def on_patch(self, path: str, body: dict[str, Any]) -> None:
        self.paths.append(path)
        self.patches.append(dict(body.get("data") or {}))
        if not self.first.is_set():
            maps = Path(f"/proc/{self.pid}/maps").read_text()
            self.loaded_at_first_beat = sorted(
                {line.split()[-1] for line in maps.splitlines() if "/torch/lib/" in line}
            )
            os.kill(self.pid, signal.SIGTERM)
            self.first.set()


@pytest.fixture
def api() -> Iterator[tuple[ProgressApi, str]]:
    """The fake API server in a thread; yields it and its URL."""
    record = ProgressApi()

    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            record.on_patch(self.path, body)
            answer = json.dumps({"kind": "ConfigMap", "data": body.get("data")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_driver_beats_and_handles_sigterm_before_its_slow_imports(
    api: tuple[ProgressApi, str], tmp_path: Path
) -> None:
    record, url = api
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    connect = ",".join(
        f"{role}=127.0.0.1:9"
        for role in ("generation", "reward", "acquisition", "judge", "trainer")
    )
    cmd = [
        sys.executable, "-m", "prefloop.cli", "driver", str(REPO / "examples/quickstart.yaml"),
        "--connect", connect, "--progress-configmap", "default/run-progress",
        "--retry-timeout-seconds", "1",
    ]  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PREFLOOP_DRIVER_HEARTBEAT_SECONDS": "60"}
    env.pop("KUBERNETES_SERVICE_HOST", None)  # the kubeconfig, not an in-cluster config
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    record.pid = proc.pid
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = out.decode(errors="replace")

    assert record.first.is_set(), log
    assert record.paths[0] == PROGRESS
    assert record.patches[0]["state"] == "starting" and record.patches[0]["heartbeat"]
    # the first heartbeat went out before torch was loaded (the engine's imports)
    assert record.loaded_at_first_beat == [], record.loaded_at_first_beat
    # the SIGTERM, right after, was handled: stopped (resumable), not killed, and said so
    assert proc.returncode == STOPPED_EXIT_CODE, log
    assert "SIGTERM, stopping after this round" in log
    assert "stopped before a new round; SIGTERM handler installed, stop requested" in log
    assert record.patches[-1]["state"] == "stopped", record.patches
