"""The test plays the Job controller and the kubelet for driver Jobs (kmock has neither).

For every ``app.kubernetes.io/component=driver`` Job it reads from the emulator, it runs the
pod's container as a local subprocess: the command and args as written by the operator
(``prefloop`` is this interpreter's ``python -m prefloop.cli``), the container's env (a
``fieldRef`` to the pod name resolved), and its volume mounts mapped to local directories:
a PersistentVolumeClaim to the directory the test gives for that claim (plus ``subPath``), a
ConfigMap to a directory holding its keys as files, an emptyDir to a fresh directory. Paths in
the args, env and working directory are rewritten from mount paths to those directories, and
the metrics port to a free one (a pod has its own network namespace; this host does not).

It writes back what the Job controller would: ``active``/``ready``/``startTime`` when the pod
runs; on exit (a process killed by signal N exits 128 + N, as in a container), the Job's
``podFailurePolicy`` decides (``FailJob``, ``Ignore`` or count against
``backoffLimit``), then Complete, Failed, or a new pod. ``spec.suspend: true`` sends SIGTERM and,
once the pod has exited, reports the Job Suspended; a deleted Job's pod gets SIGKILL. And
:meth:`FakeKubelet.lose_node` SIGKILLs the driver *without reporting anything*, as when the
node vanishes: the Job keeps saying its pod is active and ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster import NS, Cluster

from prefloop.bus.tansu import free_port
from prefloop_operator.progress import now_rfc3339

MAX_START_FAILURES = 3
"""Consecutive failures to start a pod's process after which :meth:`FakeKubelet.healthy` fails."""


@dataclass
class PodRun:
    """One driver pod: its process, and its log (stdout and stderr) kept after it exits."""

    name: str
    job: str
    uid: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    terminating: bool = False
    exit_code: int | None = None
    """The process's exit status once it has exited (negative: killed by that signal)."""
    ran_seconds: float | None = None

    def describe(self, tail_lines: int = 12) -> str:
        """One pod for a failure message: name, exit code, run time and the tail of its log."""
        if self.exit_code is None:
            state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        else:
            killed = f" (signal {-self.exit_code})" if self.exit_code < 0 else ""
            state = f"exit code {self.exit_code}{killed} after {self.ran_seconds:.1f}s"
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError as exc:
            lines = [f"(no log: {exc})"]
        tail = "\n".join(f"    | {line}" for line in lines[-tail_lines:]) or "    | (empty log)"
        return f"  pod {self.name}: {state}\n{tail}"


@dataclass
class JobBook:
    """What the Job controller remembers of one Job (by uid)."""

    failed: int = 0
    pods: int = 0
    done: bool = False
    lost: bool = False
    exit_codes: list[int] = field(default_factory=list)
    start_failures: int = 0
    """Consecutive failures to start its pod's process (reset by a start)."""


class FakeKubelet:
    """See the module doc."""

    def __init__(
        self, cluster: Cluster, claims: dict[str, Path], work: Path, env: dict[str, str]
    ) -> None:
        self.cluster = cluster
        self.claims = claims
        self.work = work
        self.env = env
        self.running: dict[str, PodRun] = {}
        self.books: dict[str, JobBook] = {}
        self.pods: list[PodRun] = []
        """Every pod started, in order, exited ones included (their exit codes and logs)."""
        self.errors: list[str] = []
        self.start_failures: list[str] = []
        """Every pod whose process could not be started, with the error."""
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        with self._lock:
            for pod in self.running.values():
                with contextlib.suppress(ProcessLookupError):
                    pod.proc.kill()
                self._record_exit(pod)

    # -- what tests do ------------------------------------------------------------------------
    def lose_node(self) -> str:
        """SIGKILL the running driver and report nothing (the node is gone); its Job's uid."""
        with self._lock:
            (uid, pod), *_ = self.running.items()
            pod.proc.kill()
            self._record_exit(pod)
            del self.running[uid]
            self.books[uid].lost = True
            return uid

    def report(self, last: int = 4) -> str:
        """The last pods' exit codes and log tails, and the loop's errors: what a failing
        test prints (a pod that exits at once says why only here)."""
        with self._lock:
            pods = list(self.pods)
            errors = list(self.errors[-5:])
        codes: dict[int | None, int] = {}
        for pod in pods:
            codes[pod.exit_code] = codes.get(pod.exit_code, 0) + 1
        lines = [f"kubelet: {len(pods)} driver pods, exit codes (None: running) {codes}"]
        lines += [pod.describe() for pod in pods[-last:]]
        lines += [f"  loop error: {e}" for e in errors]
        lines += [f"  could not start: {e}" for e in self.start_failures[-3:]]
        return "\n".join(lines)

    def healthy(self) -> bool:
        """True, or RuntimeError (which ``eventually`` does not swallow) once a pod's process
        could not be started three times in a row: the test machine, not the operator, is at
        fault, and waiting longer cannot help."""
        with self._lock:
            stuck = [b for b in self.books.values() if b.start_failures >= MAX_START_FAILURES]
            if stuck:
                raise RuntimeError(f"the kubelet cannot start driver pods\n{self.report()}")
        return True

    def driver_running(self) -> bool:
        with self._lock:
            return any(p.proc.poll() is None for p in self.running.values())

    # -- the loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                jobs = self.cluster.kube.list("Job", NS, "app.kubernetes.io/component=driver")
            except Exception:  # the emulator is going away
                continue
            with self._lock:
                seen = {j["metadata"]["uid"] for j in jobs}
                for uid in [u for u in self.running if u not in seen]:  # Job deleted
                    pod = self.running.pop(uid)
                    pod.proc.kill()
                    self._record_exit(pod)
                for job in jobs:
                    try:
                        self._sync(job)
                    except Exception as exc:  # e.g. the Job was deleted meanwhile: next tick
                        self.errors.append(f"{job['metadata']['name']}: {exc!r}")

    @staticmethod
    def _record_exit(pod: PodRun) -> None:
        """Reap the pod's process and keep its exit code and run time."""
        pod.exit_code = pod.proc.wait(10)
        pod.ran_seconds = time.monotonic() - pod.started

    def _patch_status(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        self.cluster.kube.patch("Job", NS, name, {"status": status}, subresource="status")

    def _sync(self, job: dict[str, Any]) -> None:
        uid = job["metadata"]["uid"]
        book = self.books.setdefault(uid, JobBook())
        if book.done or book.lost:
            return
        pod = self.running.get(uid)
        suspended = bool(job["spec"].get("suspend"))
        if pod is not None and pod.proc.poll() is not None:
            self._exited(job, book, pod, suspended)
            pod = None
        if suspended:
            if pod is not None and not pod.terminating:
                pod.proc.send_signal(signal.SIGTERM)
                pod.terminating = True
            elif pod is None and not _condition(job, "Suspended"):
                self._patch_status(
                    job,
                    {
                        "active": 0,
                        "ready": 0,
                        "conditions": [_cond("Suspended", "True", "JobSuspended")],
                    },
                )
            return
        if pod is None and not book.done:
            self._start(job, book)

    def _exited(self, job: dict[str, Any], book: JobBook, pod: PodRun, suspended: bool) -> None:
        self._record_exit(pod)
        code = container_exit_code(pod.proc.returncode)
        book.exit_codes.append(code)
        del self.running[pod.uid]
        action = _policy_action(job, code)
        if code == 0:
            book.done = True
            now = now_rfc3339()
            self._patch_status(
                job,
                {
                    "active": 0,
                    "ready": 0,
                    "succeeded": 1,
                    "completionTime": now,
                    "conditions": [
                        _cond("SuccessCriteriaMet", "True", "CompletionsReached"),
                        _cond("Complete", "True", "CompletionsReached"),
                    ],
                },
            )
            return
        if action == "Ignore":
            self._patch_status(job, {"active": 0, "ready": 0})
            return
        book.failed += 1
        limit = int(job["spec"].get("backoffLimit", 6))
        if action == "FailJob" or book.failed > limit:
            book.done = True
            reason = "PodFailurePolicy" if action == "FailJob" else "BackoffLimitExceeded"
            message = f"Container driver failed with exit code {code}"
            self._patch_status(
                job,
                {
                    "active": 0,
                    "ready": 0,
                    "failed": book.failed,
                    "conditions": [_cond("Failed", "True", reason, message)],
                },
            )
        else:
            self._patch_status(job, {"active": 0, "ready": 0, "failed": book.failed})

    def _start(self, job: dict[str, Any], book: JobBook) -> None:
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        pod_name = f"{name}-{uid[:5]}-{book.pods}"
        root = self.work / pod_name
        spec = job["spec"]["template"]["spec"]
        mounts = self._mount(spec, root)
        (container,) = spec["containers"]
        # Container paths in the command are mapped to the pod's mounts; this host's Python is
        # not a container path and is never mapped (a checkout under /tmp made the pod's /tmp
        # emptyDir swallow it: FileNotFoundError, no pod ever started).
        words = [
            _map(c, mounts) for c in [*container.get("command", []), *container.get("args", [])]
        ]
        cmd = (
            [sys.executable, "-m", "prefloop.cli", *words[1:]] if words[0] == "prefloop" else words
        )
        if "--metrics-port" in cmd:  # a pod has its own network namespace; this host does not
            cmd[cmd.index("--metrics-port") + 1] = str(free_port())
        env = {**os.environ, **self.env}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = _map(var["value"], mounts)
            elif (var.get("valueFrom") or {}).get("fieldRef", {}).get(
                "fieldPath"
            ) == "metadata.name":
                env[var["name"]] = pod_name
        log = self.work / f"{pod_name}.log"
        try:
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    cmd,
                    cwd=_map(container.get("workingDir", str(root)), mounts),
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        except OSError as exc:  # no process: no pod, no empty log; said, then retried
            log.unlink(missing_ok=True)
            book.start_failures += 1
            self.start_failures.append(f"{pod_name}: {exc!r}")
            return
        book.pods += 1
        book.start_failures = 0
        pod = PodRun(pod_name, name, uid, proc, log, time.monotonic())
        self.running[uid] = pod
        self.pods.append(pod)
        self._patch_status(
            job,
            {
                "active": 1,
                "ready": 1,
                "startTime": now_rfc3339(),
                "conditions": [_cond("Suspended", "False", "JobResumed")],
            },
        )

    def _mount(self, spec: dict[str, Any], root: Path) -> dict[str, Path]:
        """Mount path -> local directory for every volume mount of the pod."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        out: dict[str, Path] = {}
        (container,) = spec["containers"]
        for m in container.get("volumeMounts", []):
            volume = volumes[m["name"]]
            if "persistentVolumeClaim" in volume:
                local = self.claims[volume["persistentVolumeClaim"]["claimName"]]
                local = local / m.get("subPath", "")
            else:
                local = root / m["name"]
                if "configMap" in volume:
                    cm = self.cluster.get("ConfigMap", volume["configMap"]["name"]) or {}
                    local.mkdir(parents=True, exist_ok=True)
                    for key, text in (cm.get("data") or {}).items():
                        (local / key).write_text(text)
            local.mkdir(parents=True, exist_ok=True)
            out[m["mountPath"]] = local
        return out


def container_exit_code(returncode: int) -> int:
    """The exit code a container runtime reports: a process killed by signal N exits 128 + N
    (SIGTERM: 143), where Python's ``returncode`` says -N."""
    return 128 - returncode if returncode < 0 else returncode


def _map(text: str, mounts: dict[str, Path]) -> str:
    """A container path (or an arg/env value that is one) as the local path."""
    for mount in sorted(mounts, key=len, reverse=True):
        if text == mount or text.startswith(mount + "/"):
            return str(mounts[mount]) + text[len(mount) :]
    return text


def _policy_action(job: dict[str, Any], code: int) -> str:
    """The action of the first podFailurePolicy rule matching the exit code ("Count" if none)."""
    for rule in (job["spec"].get("podFailurePolicy") or {}).get("rules", []):
        on_exit = rule.get("onExitCodes")
        if on_exit and (code in on_exit["values"]) == (on_exit["operator"] == "In"):
            return str(rule["action"])
    return "Count"


def _cond(kind: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    now = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def _condition(job: dict[str, Any], kind: str) -> bool:
    conds = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conds)


def wait_exited(kubelet: FakeKubelet, timeout: float = 60) -> None:
    """Block until no driver process of the kubelet is alive."""
    deadline = time.monotonic() + timeout
    while kubelet.driver_running():
        assert time.monotonic() < deadline, "the driver did not exit"
        time.sleep(0.1)
