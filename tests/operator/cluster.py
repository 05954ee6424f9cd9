"""The test cluster: the kmock emulator in a background thread, a kubeconfig pointing at it, a
dict client on it, and ``prefloop operator`` as a real subprocess (so it can be SIGKILLed).

No API server can run here (no container runtime, no kube-apiserver in the allowed package
registries), so what only a real one does is not exercised: OpenAPI/CEL validation on write,
defaulting, ownerReference garbage collection, Job and Deployment controllers, the kubelet.
The tests play the controllers they need (:mod:`kubelet`) and check the schema and CEL rules
separately (tests/test_crd.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes
from k8s_emulator import StampingEmulator

from prefloop_operator.kube import Kube

ALL_VERBS = {"list", "watch", "get", "create", "patch", "update", "delete"}
RESOURCES: dict[str, dict[str, Any]] = {
    "prefloop.dev/v1alpha1/activeruns": {"kind": "ActiveRun", "subresources": {"status"}},
    "v1/configmaps": {"kind": "ConfigMap"},
    "v1/services": {"kind": "Service"},
    "v1/serviceaccounts": {"kind": "ServiceAccount"},
    "v1/events": {"kind": "Event"},
    "apps/v1/deployments": {"kind": "Deployment", "subresources": {"status"}},
    "batch/v1/jobs": {"kind": "Job", "subresources": {"status"}},
    "rbac.authorization.k8s.io/v1/roles": {"kind": "Role"},
    "rbac.authorization.k8s.io/v1/rolebindings": {"kind": "RoleBinding"},
    "kopf.dev/v1/kopfpeerings": {"kind": "KopfPeering"},
    "kopf.dev/v1/clusterkopfpeerings": {"kind": "ClusterKopfPeering", "namespaced": False},
    # kopf's namespace observer waits until namespaces are discoverable (scanning is off)
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
}
NS = "default"


def _declare(k: Any) -> None:
    for key, info in RESOURCES.items():
        kind = info["kind"]
        k.resources[key] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=info.get("namespaced", True),
            verbs=ALL_VERBS,
            subresources=info.get("subresources", set()),
        )


@contextlib.contextmanager
def emulator_in_thread() -> Iterator[tuple[Any, str]]:
    """The emulator served from its own event loop in a daemon thread; yields (emulator, url)."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async with StampingEmulator() as k, kmock.Server(k) as srv:
            _declare(k)
            box.update(k=k, url=str(srv.url).rstrip("/"), stop=asyncio.Event())
            box["loop"] = asyncio.get_running_loop()
            started.set()
            await box["stop"].wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert started.wait(20), "the emulator did not start"
    try:
        yield box["k"], box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


class Cluster:
    """The emulator as a user of the API sees it."""

    def __init__(self, emulator: Any, url: str, kubeconfig: Path) -> None:
        self.emulator = emulator
        self.url = url
        self.kubeconfig = kubeconfig
        cfg = kubernetes.client.Configuration()
        cfg.host = url
        self.kube = Kube(kubernetes.client.ApiClient(cfg), user_agent="prefloop-tests")

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create an ActiveRun in the default namespace."""
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": NS}}
        made = self.kube.create(body)
        assert made is not None, f"{manifest['metadata']['name']} exists already"
        return made

    def run(self, name: str) -> dict[str, Any]:
        obj = self.kube.get("ActiveRun", NS, name)
        assert obj is not None, f"ActiveRun {name} is gone"
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.run(name).get("status") or {})

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.kube.patch("ActiveRun", NS, name, {"spec": spec})

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(kind, NS, name)

    def events(self, name: str) -> list[dict[str, Any]]:
        """Events about the ActiveRun ``name``, oldest first."""
        items = self.kube.call("GET", f"/api/v1/namespaces/{NS}/events").get("items") or []
        mine = [e for e in items if (e.get("involvedObject") or {}).get("name") == name]
        return sorted(mine, key=lambda e: int(e["metadata"]["resourceVersion"]))

    def verbs_used(self, agent_prefixes: tuple[str, ...]) -> set[tuple[str, str, str]]:
        """(API group, resource[/subresource], RBAC verb) of every request the emulator served
        to a client whose User-Agent starts with one of ``agent_prefixes``."""
        out = set()
        for call in list(self.emulator.calls):
            resource = call.resource
            if resource is None or resource.plural is None:
                continue  # discovery (/api, /apis/GROUP/VERSION) needs no RBAC rule
            if call.agent.startswith(agent_prefixes):
                plural = resource.plural + (f"/{call.subresource}" if call.subresource else "")
                out.add((resource.group or "", plural, _rbac_verb(call.method, call.action)))
        return out


def _rbac_verb(method: str, action: str) -> str:
    """The RBAC verb of a request: get/list/watch/create/patch/update/delete."""
    method, action = method.lower().removeprefix("method."), action.lower()
    if method == "get":
        return "watch" if "watch" in action else ("get" if "fetch" in action else "list")
    return {"post": "create", "put": "update", "patch": "patch", "delete": "delete"}[method]


def write_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: kmock, cluster: {{server: "{url}"}}}}]
users: [{{name: u, user: {{token: dummy}}}}]
contexts: [{{name: kmock, context: {{cluster: kmock, user: u, namespace: {NS}}}}}]
current-context: kmock
"""
    )
    return path


def eventually(
    cond: Callable[[], Any], timeout: float = 120.0, step: float = 0.2, what: str = ""
) -> Any:
    """Poll ``cond`` until it returns something truthy; its last value, or AssertionError."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        with contextlib.suppress(KeyError, IndexError, TypeError, AssertionError):
            last = cond()
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout}s: {what or cond}; last: {last!r}")
        time.sleep(step)


class OperatorProcess:
    """``prefloop operator`` as a subprocess against the emulator (restartable, killable)."""

    def __init__(self, cluster: Cluster, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.log_dir = log_dir
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "prefloop.cli", "operator", "--liveness-port", "0", *args]
        if "--peering" not in args:
            cmd += ["--standalone", "--namespace", NS]
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "PREFLOOP_RECONCILE_SECONDS": "1",
            "PREFLOOP_IMAGE": "registry.example/prefloop:test",
            "PREFLOOP_GPU_IMAGE": "registry.example/prefloop:test-cuda",
            **self.env,
        }
        self.log = self.log_dir / f"operator-{self.starts}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.starts += 1

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crashed or OOM-killed operator pod."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
