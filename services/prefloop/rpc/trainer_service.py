"""TrainerService: the reward model's trainer behind gRPC, idempotent and restartable.

Built from the run's spec exactly as in embedded mode (embedder + feature cache for the pairs'
features, seeded head, replay buffer, anchor schedule). Each Train call is one round:

* idempotent per (run, round): the result of every round is recorded with the state it
  produced, and a retried Train for a round whose version is the one held returns that
  version without training twice;
* durable: after training, the full trainer state (head weights, anchors, optimizer, replay
  buffer) and the round record are saved as ``<state-dir>/trainer-<run>/v<version>.pt``
  (write-then-rename) before the reply, and the head is published to the shared checkpoint
  directory for the reward service. A restarted trainer resumes from its newest saved version;
* Restore(version) reloads a saved version (the engine resuming from its own checkpoint) and
  retracts the versions after it.
"""

from __future__ import annotations

import asyncio
import copy
import re
from pathlib import Path
from typing import Any

import grpc

from prefloop.engine.build import build_reward_model
from prefloop.engine.local_roles import LocalRewardModel, LocalTrainer
from prefloop.rpc import handoff
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import RequestError, pair_from_msg
from prefloop.rpc.server import Registrar
from prefloop.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc

KEEP_VERSIONS = 3
"""Saved states and published checkpoints kept per run (the engine is at most one behind)."""
_STATE_RE = re.compile(r"^v(\d{6,})\.pt$")


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    """Train and Restore over one run's reward model."""

    def __init__(self, ctx: ServiceContext, model: LocalRewardModel | None = None) -> None:
        self.ctx = ctx
        self.model = model or build_reward_model(ctx.run, ctx.state_dir, ctx.manifest_dir)
        self.trainer = LocalTrainer(self.model)
        self.state_root = ctx.state_dir / f"trainer-{ctx.run_name}"
        self.state_root.mkdir(parents=True, exist_ok=True)
        self._initial = copy.deepcopy(self.model.trainer.state_dict())
        self.rounds: dict[int, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
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
            self.model.trainer.load_state_dict(copy.deepcopy(self._initial))
            self.model.version = 0
            self.rounds = {}
        else:
            blob = handoff.load_blob(self._state_path(version))
            self.model.trainer.load_state_dict(blob["trainer"])
            self.model.version = int(blob["version"])
            self.rounds = {int(k): v for k, v in blob["rounds"].items()}
        self.ctx.metrics.checkpoint_version.set(self.model.version)

    def _save_and_publish(self) -> Path:
        v = self.model.version
        handoff.save_blob(
            self._state_path(v),
            {"trainer": self.model.trainer.state_dict(), "version": v, "rounds": self.rounds},
        )
        for old in self.saved_versions()[:-KEEP_VERSIONS]:
            self._state_path(old).unlink(missing_ok=True)
        path = handoff.publish(
            self.ctx.checkpoint_dir, self.ctx.run_name, v, self.model.head.state_dict()
        )
        handoff.prune(self.ctx.checkpoint_dir, self.ctx.run_name, KEEP_VERSIONS)
        return path

    # -- RPCs ----
    def _train(self, request: trainer_pb2.TrainRequest) -> trainer_pb2.TrainResponse:
        r = int(request.run.round)
        done = self.rounds.get(r)
        if done is not None and int(done["version"]) == self.model.version:
            return trainer_pb2.TrainResponse(
                model_version=self.model.version, metrics=done["metrics"]
            )
        if request.pair_ids and not request.pairs:
            raise RequestError(
                "pair_ids: consuming annotations from the data plane is not configured for this "
                "service; send the labelled pairs inline in pairs"
            )
        if request.prompts_total == 0 or request.prompts_done > request.prompts_total:
            raise RequestError(
                f"prompts_done/prompts_total: need 0 <= done <= total and total > 0, got "
                f"{request.prompts_done}/{request.prompts_total}"
            )
        pairs = [pair_from_msg(m, f"pairs[{i}]") for i, m in enumerate(request.pairs)]
        for i, p in enumerate(pairs):
            if p.run != self.ctx.run_name:
                raise RequestError(f"pairs[{i}].run.run: {p.run!r} is not this run")
        result = self.trainer.train(
            pairs,
            n_done=int(request.prompts_done),
            n_total=int(request.prompts_total),
            seed=int(request.seed),
        )
        self.rounds[r] = {"version": result.model_version, "metrics": result.metrics}
        self._save_and_publish()
        self.ctx.metrics.training_steps.inc(result.metrics.get("steps", 0.0))
        self.ctx.metrics.checkpoint_version.set(result.model_version)
        return trainer_pb2.TrainResponse(model_version=result.model_version, metrics=result.metrics)

    async def Train(
        self, request: trainer_pb2.TrainRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.TrainResponse:
        self.ctx.check_run(request.run)
        async with self._lock:
            return await asyncio.to_thread(self._train, request)

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
