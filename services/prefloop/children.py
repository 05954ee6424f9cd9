"""Child processes that never outlive the command that started them.

``prefloop up`` and ``prefloop broker`` start long-running children (the role services, the
broker and its storage). Each child

- runs in its own process group, so stopping it also stops anything it started, and a Ctrl-C
  in the terminal reaches only the parent, which then stops the children in order;
- gets ``PR_SET_PDEATHSIG = SIGTERM`` (Linux) when started from the main thread: if the parent
  dies without cleaning up (even by SIGKILL) the kernel sends the child SIGTERM, so no orphan
  is left behind. (The kernel ties this to the creating *thread*: a child started from a
  short-lived thread would be killed when that thread ends, so there it is not set.)
- writes stdout and stderr to a log file.

:func:`stop_all` sends SIGTERM to every group, waits up to a grace period, then SIGKILLs what
is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel for SIGTERM when the parent dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as a child in its own process group, tied to this process's life."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    in_main_thread = threading.current_thread() is threading.main_thread()
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            process_group=0,
            preexec_fn=_die_with_parent if in_main_thread else None,
        )


def stop_all(procs: Sequence[subprocess.Popen[bytes]], grace_seconds: float = 15.0) -> None:
    """SIGTERM every child's process group, wait up to ``grace_seconds``, then SIGKILL.

    Why: role services finish in-flight calls on SIGTERM (their ``--grace``); a child that
    hangs must still not survive its parent.
    """
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        else:  # reap anything the child itself left in its group
            _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a child's log (what to show when it failed)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
