"""TrainerService: the reward model's trainer behind gRPC, idempotent and restartable.

Built from the run's spec exactly as in embedded mode (embedder + feature cache for the pairs'
features, seeded head, replay buffer, anchor schedule; with ``trainer.kind: policy`` the policy,
its frozen reference and the DPO steps of :mod:`prefloop.trainer.policy`, whose weights are
what gets published: :mod:`prefloop.rpc.served_model`). Each Train call is one round:

* idempotent per (run, round): the result of every round is recorded with the state it
  produced, and a retried Train for a round whose version is the one held returns that
  version without training twice;
* durable: after training, the full trainer state (head weights, anchors, optimizer, replay
  buffer) and the round record are saved as ``<state-dir>/trainer-<run>/v<version>.pt``
  (write-then-rename) before the reply, and the head is published to the shared checkpoint
  directory for the reward service. A restarted trainer resumes from its newest saved version;
* Restore(version) reloads a saved version (the engine resuming from its own checkpoint) and
  retracts the versions after it.

With ``--kafka`` the round's pairs come from the run's annotations topic: the Train request
names them by ``pair_ids`` only, and the trainer waits (within the call's deadline, else
UNAVAILABLE, which the client retries) until an :class:`~prefloop.rpc.dataplane.AnnotationInbox`
has received all of them. Each new version is also announced on the checkpoints topic (after the
files are written, before the reply), which is how the reward service learns of it.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import grpc

from prefloop.bus.base import BusError
from prefloop.engine.local_roles import LocalRewardModel
from prefloop.rpc import handoff
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import RequestError, pair_from_msg
from prefloop.rpc.dataplane import AnnotationInbox, NotArrived, announce_checkpoint
from prefloop.rpc.served_model import build_served_model
from prefloop.rpc.server import Registrar, Unavailable
from prefloop.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc

DEFAULT_WAIT_SECONDS = 60.0
"""How long a Train call without a deadline waits for its pairs to arrive from the topic."""
KEEP_VERSIONS = 3
"""Saved states and published checkpoints kept per run (the engine is at most one behind)."""
_STATE_RE = re.compile(r"^v(\d{6,})\.pt$")


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    """Train and Restore over one run's reward model."""

    def __init__(self, ctx: ServiceContext, model: LocalRewardModel | None = None) -> None:
        self.ctx = ctx
        self.served = build_served_model(ctx, model)
        self.model = self.served.model
        self.trainer = self.served.trainer_role()
        self.state_root = ctx.state_dir / f"trainer-{ctx.run_name}"
        self.state_root.mkdir(parents=True, exist_ok=True)
        self.rounds: dict[int, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self.publisher = ctx.publisher()
        self.announced: set[int] = set()
        """Versions this process announced on the checkpoints topic."""
        self.inbox = None if ctx.bus is None else AnnotationInbox(ctx.bus, ctx.run_name)
        saved = self.saved_versions()
        if saved:
            self._load_version(saved[-1])
        ctx.metrics.checkpoint_version.set(self.model.version)

    # -- persistence ----
    def _state_path(self, version: int) -> Path:
        return self.state_root / f"v{version:06d}.pt"

    def saved_versions(self) -> list[int]:
        """Versions whose full state is saved, ascending."""
        out = []
        for p in self.state_root.iterdir():
            m = _STATE_RE.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def _load_version(self, version: int) -> None:
        if version == 0 and version not in self.saved_versions():
            self.served.reset_trainer()
            self.rounds = {}
        else:
            blob = handoff.load_blob(self._state_path(version))
            self.served.load_trainer_state(blob["trainer"])
            self.model.version = int(blob["version"])
            self.rounds = {int(k): v for k, v in blob["rounds"].items()}
        self.ctx.metrics.checkpoint_version.set(self.model.version)

    def _save_and_publish(self) -> Path:
        v = self.model.version
        handoff.save_blob(
            self._state_path(v),
            {"trainer": self.served.trainer_state(), "version": v, "rounds": self.rounds},
        )
        for old in self.saved_versions()[:-KEEP_VERSIONS]:
            self._state_path(old).unlink(missing_ok=True)
        path = handoff.publish(
            self.ctx.checkpoint_dir, self.ctx.run_name, v, self.served.published_state()
        )
        handoff.prune(self.ctx.checkpoint_dir, self.ctx.run_name, KEEP_VERSIONS)
        self._announce()
        return path

    def _announce(self) -> None:
        """Announce the held version on the checkpoints topic unless this process already did.

        A failed announcement fails the call (UNAVAILABLE); its retry finds the round trained
        and announces again, so the reward service never waits for a version nobody announced.
        """
        v = self.model.version
        if self.publisher is None or v == 0 or v in self.announced:
            return
        path = handoff.version_path(self.ctx.checkpoint_dir, self.ctx.run_name, v)
        try:
            announce_checkpoint(self.publisher, v, str(path), self.served.published_state())
        except BusError as exc:
            raise Unavailable(f"checkpoints topic: {exc}") from exc
        self.announced.add(v)

    # -- RPCs ----
    def _train(
        self, request: trainer_pb2.TrainRequest, wait_seconds: float
    ) -> trainer_pb2.TrainResponse:
        r = int(request.run.round)
        done = self.rounds.get(r)
        if done is not None and int(done["version"]) == self.model.version:
            if self.inbox is not None:
                self.inbox.discard(list(request.pair_ids))
            self._announce()
            return trainer_pb2.TrainResponse(
                model_version=self.model.version, metrics=done["metrics"]
            )
        if request.pair_ids and request.pairs:
            raise RequestError("pairs/pair_ids: send the pairs inline or by id, not both")
        if request.pair_ids and self.inbox is None:
            raise RequestError(
                "pair_ids: consuming annotations from the data plane is not configured for this "
                "service (start it with --kafka); send the labelled pairs inline in pairs"
            )
        if request.prompts_total == 0 or request.prompts_done > request.prompts_total:
            raise RequestError(
                f"prompts_done/prompts_total: need 0 <= done <= total and total > 0, got "
                f"{request.prompts_done}/{request.prompts_total}"
            )
        if request.pair_ids:
            assert self.inbox is not None
            if len(set(request.pair_ids)) != len(request.pair_ids):
                raise RequestError("pair_ids: an id is listed twice")
            try:
                pairs = self.inbox.wait_for(list(request.pair_ids), time.monotonic() + wait_seconds)
            except (NotArrived, BusError) as exc:
                raise Unavailable(str(exc)) from exc
        else:
            pairs = [pair_from_msg(m, f"pairs[{i}]") for i, m in enumerate(request.pairs)]
        for i, p in enumerate(pairs):
            if p.run != self.ctx.run_name:
                raise RequestError(f"pairs[{i}].run.run: {p.run!r} is not this run")
        result = self.trainer.train(
            pairs,
            round_index=r,
            n_done=int(request.prompts_done),
            n_total=int(request.prompts_total),
            seed=int(request.seed),
        )
        self.rounds[r] = {"version": result.model_version, "metrics": result.metrics}
        self._save_and_publish()
        self.ctx.metrics.training_steps.inc(result.metrics.get("steps", 0.0))
        self.ctx.metrics.checkpoint_version.set(result.model_version)
        if self.inbox is not None:
            self.inbox.discard(list(request.pair_ids))
        return trainer_pb2.TrainResponse(model_version=result.model_version, metrics=result.metrics)

    async def Train(
        self, request: trainer_pb2.TrainRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.TrainResponse:
        self.ctx.check_run(request.run)
        remaining = context.time_remaining()
        wait = DEFAULT_WAIT_SECONDS if remaining is None else max(0.0, remaining - 0.5)
        async with self._lock:
            return await asyncio.to_thread(self._train, request, wait)

    def _restore(self, version: int) -> common_pb2.Checkpoint:
        saved = self.saved_versions()
        if version != 0 and version not in saved:
            raise RequestError(
                f"version: no saved trainer state for version {version}; saved: {saved or 'none'}"
            )
        self._load_version(version)
        for v in saved:
            if v > version:
                self._state_path(v).unlink(missing_ok=True)
        handoff.retract_after(self.ctx.checkpoint_dir, self.ctx.run_name, version)
        self.announced = {v for v in self.announced if v <= version}
        if self.inbox is not None:
            self.inbox.reset()  # the rounds after ``version`` will be trained again
        uri = ""
        if version > 0:
            uri = str(self._save_and_publish())
        return common_pb2.Checkpoint(run=self.ctx.run_name, version=version, uri=uri)

    async def Restore(
        self, request: trainer_pb2.RestoreRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Checkpoint:
        self.ctx.check_run(request.run)
        async with self._lock:
            return await asyncio.to_thread(self._restore, int(request.version))


def register(servicer: TrainerServicer) -> Registrar:
    """A registrar for :func:`prefloop.rpc.server.start_server`."""

    def add(server: grpc.aio.Server) -> str:
        trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server)
        return str(trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name)

    return add
