"""How the driver's clients survive services that restart: a time budget, backoff, readiness.

A role service that is killed and restarted may need minutes to be back (a model service
reloads its weights; on a loaded machine a restarted reward or trainer took 41 s and more).
So every call of :class:`RetryingCaller`

- waits for its channel to be ready (``wait_for_ready``; every RPC of the contract is
  idempotent, so waiting and re-sending are safe) with the role's deadline as timeout, cut to
  what is left of the budget;
- retries UNAVAILABLE and DEADLINE_EXCEEDED, sleeping a random time below a cap that doubles
  per attempt up to ``backoff_max`` ("full jitter": many clients do not retry in lock-step);
- gives up only when the call's total budget (``ClientConfig.retry_timeout_seconds``, 600 s by
  default) is spent, with a :class:`RoleCallError` whose message is one line: role, address,
  method, attempts, last status, and the remedy (``--resume``).

:func:`wait_until_serving` holds the driver until each role's ``grpc.health.v1`` check says
SERVING, within the same budget, reporting one line per role.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

if TYPE_CHECKING:
    from prefloop.rpc.clients import ClientConfig

log = logging.getLogger("prefloop.rpc.clients")

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
DEFAULT_RETRY_TIMEOUT_SECONDS = 600.0
"""How long a call keeps retrying by default: long enough for a model service to reload."""
HEALTH_PROBE_SECONDS = 5.0
"""The timeout of one health check while waiting for a service to come up."""
T = TypeVar("T")
CallKwargs = dict[str, Any]
"""The keyword arguments of one stub call: timeout, metadata, wait_for_ready."""


class RoleCallError(RuntimeError):
    """A call to a role service failed for good: the retry budget ran out, or a status that
    retrying cannot fix (INVALID_ARGUMENT, UNAUTHENTICATED, ...).

    ``str()`` is one line naming the role, its address, the method and the last status; the
    CLI prints it instead of a traceback and exits 1.
    """

    def __init__(
        self,
        role: str,
        address: str,
        method: str,
        code: grpc.StatusCode | None,
        details: str,
        *,
        attempts: int,
        elapsed_seconds: float,
        gave_up: bool,
    ) -> None:
        self.role = role
        self.address = address
        self.method = method
        self.code = code
        self.details = " ".join(details.split())
        self.attempts = attempts
        self.elapsed_seconds = elapsed_seconds
        self.gave_up = gave_up
        status = f"{code.name if code is not None else 'no status'}: {self.details}"
        where = f"{role} service at {address or '?'}"
        if gave_up:
            text = (
                f"{where} did not answer {method} within {elapsed_seconds:.0f}s "
                f"({attempts} attempt{'s' if attempts != 1 else ''}); last status {status}. "
                "Completed rounds are "
                "checkpointed: rerun with --resume once the service is back "
                "(or allow longer with --retry-timeout-seconds)"
            )
        else:
            text = f"{where}: {method} failed with {status}"
        super().__init__(text)


def rpc_status(err: grpc.RpcError) -> tuple[grpc.StatusCode | None, str]:
    """The status code and details of a failed call (None / str(err) when it has none)."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    return code, str(details or "")


class RetryingCaller:
    """Calls one role's RPCs within the configured time budget (see the module docstring)."""

    def __init__(
        self, role: str, config: ClientConfig, address: str = "", *, seed: int | None = None
    ) -> None:
        self.role = role
        self.config = config
        self.address = address
        self.retries = 0
        """Attempts that failed with a retryable status and were retried."""
        self._jitter = random.Random(seed)  # timing only: never touches data

    def call(self, name: str, fn: Callable[[CallKwargs], T]) -> T:
        """``fn(kwargs)`` (timeout, metadata, wait_for_ready) until it succeeds, fails with a
        status retrying cannot fix, or the budget runs out (both: :class:`RoleCallError`)."""
        cfg = self.config
        start = time.monotonic()
        give_up_at = start + cfg.retry_timeout_seconds
        cap = cfg.backoff_initial
        attempt = 0
        while True:
            attempt += 1
            kwargs: CallKwargs = {
                "timeout": max(0.05, min(cfg.deadlines[self.role], give_up_at - time.monotonic())),
                "metadata": cfg.metadata(),
                "wait_for_ready": True,
            }
            try:
                return fn(kwargs)
            except grpc.RpcError as err:
                code, details = rpc_status(err)
                elapsed = time.monotonic() - start
                out_of_attempts = cfg.max_attempts is not None and attempt >= cfg.max_attempts
                if code not in RETRYABLE or out_of_attempts or elapsed >= cfg.retry_timeout_seconds:
                    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                        # a wait_for_ready call that timed out says nothing about why: one last
                        # fail-fast attempt either succeeds or tells (e.g. connection refused)
                        try:
                            return fn({**kwargs, "timeout": 1.0, "wait_for_ready": False})
                        except grpc.RpcError as last:
                            code, details = rpc_status(last)
                    raise RoleCallError(
                        self.role,
                        self.address,
                        name,
                        code,
                        details,
                        attempts=attempt,
                        elapsed_seconds=elapsed,
                        gave_up=code in RETRYABLE,
                    ) from None
                pause = max(0.0, min(self._jitter.uniform(0.0, cap), give_up_at - time.monotonic()))
                self.retries += 1
                log.warning(
                    "%s.%s at %s: %s (attempt %d, %.0fs of %.0fs), retrying in %.1fs",
                    self.role,
                    name,
                    self.address,
                    code,
                    attempt,
                    elapsed,
                    cfg.retry_timeout_seconds,
                    pause,
                )
                time.sleep(pause)
                cap = min(cfg.backoff_max, cap * 2)


def check_serving(channel: grpc.Channel, kwargs: CallKwargs) -> None:
    """One health check (``kwargs`` as :meth:`RetryingCaller.call` passes them, the timeout
    capped at ``HEALTH_PROBE_SECONDS``); raises ``grpc.RpcError``, UNAVAILABLE when the
    service answers but is not SERVING yet."""
    timeout = min(HEALTH_PROBE_SECONDS, kwargs["timeout"])
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), **{**kwargs, "timeout": timeout}
    )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise _NotServing(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


class _NotServing(grpc.RpcError):
    """A health reply other than SERVING, shaped as a retryable RPC error."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self._status = status

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return f"health check says {self._status}"


def wait_until_serving(
    channels: Mapping[str, tuple[str, grpc.Channel]],
    config: ClientConfig,
    report: Callable[[str], None] | None = None,
) -> None:
    """Block until every role's health check says SERVING, one ``report`` line per role.

    Why: services started together load their models at different speeds; round 1 must not
    start (and burn retries) before all are up. ``channels`` maps role -> (address, channel).

    Raises:
        RoleCallError: a role was not SERVING within ``config.retry_timeout_seconds``.
    """
    say = report or (lambda line: None)
    for role, (address, channel) in channels.items():
        start = time.monotonic()
        caller = RetryingCaller(role, config, address)

        def probe(kwargs: CallKwargs, ch: grpc.Channel = channel) -> None:
            check_serving(ch, kwargs)

        say(f"waiting for {role} at {address} ...")
        caller.call("Health.Check", probe)
        say(f"{role:<11} {address:<21} SERVING ({time.monotonic() - start:.1f}s)")
