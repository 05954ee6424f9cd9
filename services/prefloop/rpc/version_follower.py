"""Hold a served model at the version a call asks for: the trainer -> consumer hand-off.

The trainer service publishes every new version (reward head or policy) to the shared checkpoint
directory (:mod:`prefloop.rpc.handoff`) and, with ``--kafka``, announces it on the run's
checkpoints topic (:class:`~prefloop.rpc.dataplane.CheckpointFeed`: weights inline up to 1 MiB,
else by the file's uri). Two services consume versions the same way, through
:class:`VersionFollower`:

* the reward service scores at the newest version >= ``min_model_version`` (any newer version is
  at least as trained);
* the generation service samples ``backend: policy`` entries at exactly ``policy_version``
  (``exact=True``): the responses must be the ones the embedded run sampled from that version.

Before answering, a call waits (within its deadline) for the version to be published and loads
it; if it does not appear in time the call fails with UNAVAILABLE, which clients retry. A version
that can never be obtained (announced by a uri this service cannot read; with ``exact``, a
version older than the newest published one that is gone) is refused at once with
INVALID_ARGUMENT naming the field, the version and where it looked. Version 0 is the seeded
initial model on both sides and is never published.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from prefloop.bus.base import BusError
from prefloop.bus.payloads import CheckpointEvent
from prefloop.rpc import handoff
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import RequestError
from prefloop.rpc.dataplane import CheckpointFeed
from prefloop.rpc.served_model import ServedModel
from prefloop.rpc.server import Unavailable

DEFAULT_WAIT_SECONDS = 60.0
"""How long a call without a deadline waits for its model version."""
POLL_SECONDS = 0.05
FEED_POLL_SECONDS = 0.2
"""How long one poll of the checkpoints topic waits while a call waits for its version."""


class VersionFollower:
    """Loads the published versions of one run into ``served`` on demand (not thread-safe:
    callers hold their own lock around :meth:`hold` and the use of the model)."""

    def __init__(self, ctx: ServiceContext, served: ServedModel, field: str) -> None:
        self.ctx = ctx
        self.served = served
        self.field = field
        """The request field that names the version (for error messages)."""
        self.feed = None if ctx.bus is None else CheckpointFeed(ctx.bus, ctx.run_name)
        self._loaded: CheckpointEvent | None = None
        ctx.metrics.checkpoint_version.set(0)

    @property
    def where(self) -> str:
        """Where versions come from: the checkpoints topic, else the checkpoint directory."""
        return str(self.ctx.checkpoint_dir if self.feed is None else self.feed.topic)

    def _gone(self, version: int, newer: list[int]) -> RequestError:
        return RequestError(
            f"{self.field}: version {version} of run {self.ctx.run_name!r} is not in {self.where} "
            f"(published: {newer}); it was pruned or retracted, so it cannot be loaded"
        )

    def _feed_target(self, version: int, exact: bool) -> CheckpointEvent | int | None:
        """From the checkpoints topic: the announcement to load, 0 (initial model), or None.

        Version 0 (the seeded initial model) is never announced and always exists, so asking
        for it exactly gets it, as any other exact version does (see :meth:`CheckpointFeed.pick`).
        """
        assert self.feed is not None
        if version == 0:
            return 0
        try:
            self.feed.poll(0.0)
            event = self.feed.pick(version)
            if event is None or event.version != version:
                self.feed.poll(FEED_POLL_SECONDS)
                event = self.feed.pick(version)
        except BusError as exc:
            raise Unavailable(f"checkpoints topic: {exc}") from exc
        if event is not None and exact and event.version != version:
            raise self._gone(version, sorted(self.feed.announced))
        return event

    def _dir_target(self, version: int, exact: bool) -> int | None:
        """The newest published version >= ``version`` (exactly it with ``exact``), or None."""
        published = handoff.published_versions(self.ctx.checkpoint_dir, self.ctx.run_name)
        newer = [v for v in published if v >= version]
        if version == 0:
            return 0 if exact or not newer else newer[-1]
        if exact and newer and version not in newer:
            raise self._gone(version, published)
        if exact:
            return version if newer else None
        return newer[-1] if newer else None

    def _load_event(self, event: CheckpointEvent) -> None:
        try:
            state = CheckpointFeed.head_state(event)
        except OSError as exc:
            raise RequestError(
                f"{self.field}: version {event.version} of run {self.ctx.run_name!r} was "
                f"announced by uri {event.uri}, which this service cannot read ({exc}); give it "
                "the trainer's --checkpoint-dir"
            ) from exc
        self.served.load_published(state)
        self.served.model.version = event.version
        self._loaded = event
        self.ctx.metrics.checkpoint_version.set(event.version)

    def _load(self, version: int) -> None:
        self._loaded = None
        if version == 0:
            self.served.load_initial()
        else:
            path = handoff.version_path(self.ctx.checkpoint_dir, self.ctx.run_name, version)
            blob = handoff.load_blob(path)
            self.served.load_published(blob["head"])
        self.served.model.version = version
        self.ctx.metrics.checkpoint_version.set(version)

    async def hold(
        self, version: int, context: grpc.aio.ServicerContext, *, exact: bool = False
    ) -> None:
        """Hold the newest version >= ``version`` (exactly ``version`` with ``exact``),
        waiting for it to be published within the call's deadline.

        Why: the trainer publishes a version before its Train call returns, but the consumer
        may see the announcement (or the file) a moment later; waiting here instead of failing
        spares the driver a retry, and the deadline bounds the wait.
        """
        remaining = context.time_remaining()
        budget = DEFAULT_WAIT_SECONDS if remaining is None else max(0.0, remaining - 0.5)
        give_up = time.monotonic() + budget
        while True:
            if self.feed is not None:
                found = await asyncio.to_thread(self._feed_target, version, exact)
                if isinstance(found, CheckpointEvent):
                    if found is not self._loaded:
                        await asyncio.to_thread(self._load_event, found)
                    return
                target = found
            else:
                target = await asyncio.to_thread(self._dir_target, version, exact)
            if target is not None:
                if target != self.served.model.version:
                    await asyncio.to_thread(self._load, target)
                return
            if time.monotonic() >= give_up:
                raise Unavailable(
                    f"{self.field}: version {version} of run {self.ctx.run_name!r} "
                    f"has not been published in {self.where} yet"
                )
            await asyncio.sleep(POLL_SECONDS)
