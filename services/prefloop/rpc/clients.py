"""Client roles: the engine's five role protocols implemented over gRPC.

``prefloop run RUN.yaml --connect generation=h:p,reward=h:p,acquisition=h:p,judge=h:p,
trainer=h:p`` drives the same :class:`~prefloop.engine.round_engine.RoundEngine` through these.
Every call has a deadline and waits for the channel to be ready (``wait_for_ready``: a call to
a service that is restarting blocks until it listens again instead of failing at once);
UNAVAILABLE and DEADLINE_EXCEEDED are retried with exponential backoff and full jitter until the
call's total time budget (``ClientConfig.retry_timeout_seconds``, 10 minutes by default: a model
service may take minutes to reload) runs out. Then the call raises :class:`RoleCallError`, whose
one-line message names the role, its address, the last status and the ``--resume`` remedy.
Retrying is safe because every RPC is idempotent: selection and scoring are pure, the judge
answers a recorded pair from its log, and the trainer returns the recorded version of a round
it already trained. :func:`wait_until_serving` holds the driver until every role's health check
says SERVING.

The reward and trainer clients share a :class:`VersionTracker`: after round r trains version
v, the next Score asks the reward service for ``min_model_version = v``.

With ``kafka=HOST:PORT`` in ``--connect`` the engine publishes each round's records to the run's
topics (:class:`~prefloop.bus.publisher.RunPublisher`) and the trainer client sends only the
round's pair ids: the trainer service reads the pairs from the annotations topic.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.bus.publisher import RunPublisher
from prefloop.data.records import PreferencePair, PromptItem
from prefloop.engine.roles import RewardScores, TrainResult
from prefloop.engine.round_engine import Roles
from prefloop.judge.base import Judgement, JudgeRequest
from prefloop.rpc.convert import (
    estimate_arrays,
    item_from_msg,
    item_to_msg,
    judge_request_to_msg,
    judgement_from_msg,
    pair_to_msg,
    selection_from_pairs,
    to_json,
)
from prefloop.rpc.retry import (
    DEFAULT_RETRY_TIMEOUT_SECONDS,
    CallKwargs,
    RetryingCaller,
    wait_until_serving,
)
from prefloop.rpc.server import DEFAULT_MAX_MESSAGE_BYTES
from prefloop.rpc.tensors import to_tensor
from prefloop.spec import ActiveRun
from prefloop.v1 import (
    acquisition_pb2,
    acquisition_pb2_grpc,
    common_pb2,
    generation_pb2,
    generation_pb2_grpc,
    judge_pb2,
    judge_pb2_grpc,
    reward_pb2,
    reward_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

log = logging.getLogger("prefloop.rpc.clients")

ROLE_NAMES = ("generation", "reward", "acquisition", "judge", "trainer")


class ConnectError(ValueError):
    """A ``--connect`` value is malformed or misses a role."""


KAFKA = "kafka"
"""The ``--connect`` key of the data plane's bootstrap server(s) (optional)."""


def parse_connect(text: str) -> dict[str, str]:
    """``generation=h:p,reward=h:p,...[,kafka=h:p]`` -> {role: address}.

    All five roles are required; ``kafka`` is optional (without it, pairs travel inline).
    """
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, sep, address = part.partition("=")
        if not sep or not address or ":" not in address:
            raise ConnectError(f"--connect: {part!r} is not role=host:port")
        if role not in (*ROLE_NAMES, KAFKA):
            raise ConnectError(
                f"--connect: unknown role {role!r}; roles: {', '.join(ROLE_NAMES)} (and kafka)"
            )
        if role in out:
            raise ConnectError(f"--connect: {role} is given twice")
        out[role] = address
    missing = [r for r in ROLE_NAMES if r not in out]
    if missing:
        raise ConnectError(f"--connect: no address for {', '.join(missing)}")
    return out


@dataclass(frozen=True)
class ClientConfig:
    """How clients reach the services.

    Attributes:
        tls_ca: PEM of the CA (or self-signed certificate) to trust; None = plaintext.
        tls_server_name: override of the name checked against the certificate.
        auth_token: bearer token sent with every call; left out of ``repr`` (and so of every
            log line and traceback that shows the config).
        deadlines: per-role deadline in seconds of each call.
        retry_timeout_seconds: total time budget of one call, retries included: how long the
            driver keeps waiting for a service that is down or restarting before it gives up.
        max_attempts: optional cap on the attempts per call (None: only the budget bounds them).
        backoff_initial / backoff_max: the cap of the first pause between attempts and the
            largest cap (seconds); the cap doubles per attempt and each pause is drawn
            uniformly below it ("full jitter", so many clients do not retry in lock-step).
        reconnect_backoff_max_ms: the longest gRPC waits between two connection attempts of a
            channel (its default, 2 minutes, would leave a restarted service unnoticed).
    """

    tls_ca: Path | None = None
    tls_server_name: str | None = None
    auth_token: str | None = field(default=None, repr=False)
    deadlines: dict[str, float] = field(
        default_factory=lambda: {
            "generation": 600.0,
            "reward": 300.0,
            "acquisition": 60.0,
            "judge": 300.0,
            "trainer": 600.0,
        }
    )
    retry_timeout_seconds: float = DEFAULT_RETRY_TIMEOUT_SECONDS
    max_attempts: int | None = None
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    reconnect_backoff_max_ms: int = 2000
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata (the bearer token, when configured)."""
        return (("authorization", f"Bearer {self.auth_token}"),) if self.auth_token else ()


def open_channel(address: str, config: ClientConfig) -> grpc.Channel:
    """A channel to ``address`` with the configured TLS and message limits."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", min(200, config.reconnect_backoff_max_ms)),
        ("grpc.min_reconnect_backoff_ms", min(200, config.reconnect_backoff_max_ms)),
        ("grpc.max_reconnect_backoff_ms", config.reconnect_backoff_max_ms),
    ]
    if config.tls_ca is None:
        return grpc.insecure_channel(address, options=options)
    if config.tls_server_name:
        options.append(("grpc.ssl_target_name_override", config.tls_server_name))
    creds = grpc.ssl_channel_credentials(root_certificates=Path(config.tls_ca).read_bytes())
    return grpc.secure_channel(address, creds, options=options)


@dataclass
class VersionTracker:
    """The reward-model version the trainer last published (what Score must wait for)."""

    version: int = 0


class GenerationClient:
    """GenerationRole over GenerationService.Generate (server streaming)."""

    def __init__(
        self, run: ActiveRun, channel: grpc.Channel, config: ClientConfig, address: str = ""
    ) -> None:
        self.run_name = run.metadata.name
        self.stub = generation_pb2_grpc.GenerationServiceStub(channel)
        self.caller = RetryingCaller("generation", config, address)

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        request = generation_pb2.GenerateRequest(
            run=common_pb2.RunRef(run=self.run_name),
            prompts=[item_to_msg(it) for it in items],
            seed=seed,
        )

        def do(kwargs: CallKwargs) -> list[PromptItem]:
            stream: Iterable[generation_pb2.GenerateResponse] = self.stub.Generate(
                request, **kwargs
            )
            return [item_from_msg(r.prompt, "prompt") for r in stream]

        out = self.caller.call("Generate", do)
        got = [it.prompt_id for it in out]
        want = [it.prompt_id for it in items]
        if got != want:
            raise RuntimeError(f"generation service returned prompts {got}, expected {want}")
        return out


class RewardClient:
    """RewardRole over RewardService.Score / Evaluate at the tracked model version."""

    def __init__(
        self,
        run: ActiveRun,
        channel: grpc.Channel,
        config: ClientConfig,
        tracker: VersionTracker,
        address: str = "",
    ) -> None:
        self.run_name = run.metadata.name
        self.stub = reward_pb2_grpc.RewardServiceStub(channel)
        self.caller = RetryingCaller("reward", config, address)
        self.tracker = tracker

    def score(self, items: list[PromptItem], mask: np.ndarray) -> RewardScores:
        t0 = time.perf_counter()
        request = reward_pb2.ScoreRequest(
            run=common_pb2.RunRef(run=self.run_name),
            prompts=[item_to_msg(it) for it in items],
            min_model_version=self.tracker.version,
            include_features=True,
        )
        est = self.caller.call("Score", lambda kw: self.stub.Score(request, **kw))
        arrays = estimate_arrays(est, "RewardEstimate")
        mean, std, samples = arrays["mean"], arrays["std"], arrays["samples"]
        assert mean is not None and std is not None
        if mean.shape != mask.shape or samples is None:
            raise RuntimeError(
                f"reward service returned mean {mean.shape} (samples: {samples is not None}) "
                f"for a batch of shape {mask.shape}"
            )
        return RewardScores(
            mean=mean,
            std=std,
            samples=samples,
            features=arrays["features"],
            pref_mean=arrays["pref_mean"],
            pref_var=arrays["pref_var"],
            model_version=int(est.model_version),
            timings={"reward_rpc_seconds": time.perf_counter() - t0},
        )

    def evaluate(self, items: list[PromptItem]) -> dict[str, float]:
        if not items:
            return {}
        request = reward_pb2.EvaluateRequest(
            run=common_pb2.RunRef(run=self.run_name),
            prompts=[item_to_msg(it) for it in items],
            min_model_version=self.tracker.version,
        )
        reply = self.caller.call("Evaluate", lambda kw: self.stub.Evaluate(request, **kw))
        return dict(reply.metrics)


class AcquisitionClient:
    """AcquisitionRole over AcquisitionService.Select."""

    def __init__(
        self, run: ActiveRun, channel: grpc.Channel, config: ClientConfig, address: str = ""
    ) -> None:
        self.run_name = run.metadata.name
        self.stub = acquisition_pb2_grpc.AcquisitionServiceStub(channel)
        self.caller = RetryingCaller("acquisition", config, address)

    def select(
        self, inputs: AcquisitionInput, *, method: str, params: dict[str, Any], seed: int
    ) -> Selection:
        request = select_request(self.run_name, inputs, method=method, params=params, seed=seed)
        reply = self.caller.call("Select", lambda kw: self.stub.Select(request, **kw))
        info = json.loads(reply.info_json) if reply.info_json else {}
        return selection_from_pairs(reply.pairs, info)


def select_request(
    run_name: str, inputs: AcquisitionInput, *, method: str, params: dict[str, Any], seed: int
) -> acquisition_pb2.SelectRequest:
    """The SelectRequest of an acquisition input (optional arrays left unset when None)."""
    est = common_pb2.RewardEstimate(mean=to_tensor(inputs.mean), std=to_tensor(inputs.std))
    for name in ("samples", "features", "pref_mean", "pref_var"):
        arr = getattr(inputs, name)
        if arr is not None:
            getattr(est, name).CopyFrom(to_tensor(arr))
    request = acquisition_pb2.SelectRequest(
        run=common_pb2.RunRef(run=run_name),
        method=method,
        params_json=to_json(params),
        seed=seed,
        estimate=est,
        mask=to_tensor(inputs.mask),
    )
    if inputs.judge_scores is not None:
        request.judge_scores.CopyFrom(to_tensor(inputs.judge_scores))
    if inputs.models is not None:
        request.models.extend(str(m) for m in inputs.models.reshape(-1))
    return request


class JudgeClient:
    """JudgeRole over JudgeService.Judge; ``name`` is the run's judge name (from the spec)."""

    def __init__(
        self,
        run: ActiveRun,
        channel: grpc.Channel,
        config: ClientConfig,
        name: str,
        tracker: VersionTracker | None = None,
        address: str = "",
    ) -> None:
        self.run_name = run.metadata.name
        self.name = name
        self.stub = judge_pb2_grpc.JudgeServiceStub(channel)
        self.caller = RetryingCaller("judge", people_wait(run, config), address)
        self.tracker = tracker or VersionTracker()
        self.new_calls = 0

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        request = judge_pb2.JudgeRequest(
            run=common_pb2.RunRef(run=self.run_name, round=self.tracker.version),
            pairs=[judge_request_to_msg(r) for r in requests],
        )
        reply = self.caller.call("Judge", lambda kw: self.stub.Judge(request, **kw))
        self.new_calls += int(reply.new_calls)
        return [judgement_from_msg(a) for a in reply.annotations]


PEOPLE_DEADLINE_MARGIN_SECONDS = 60.0
"""A human judge's call deadline beyond its round timeout (the service's own work)."""


def people_wait(run: ActiveRun, config: ClientConfig) -> ClientConfig:
    """The client config of the judge: for a human judge, calls that may wait for people.

    Why: a human judge's Judge call returns when people have labelled the round (or its
    ``roundTimeoutSeconds`` is over), far beyond a machine's deadline. The call's deadline then
    covers the round timeout, and the retry budget is the timeout plus the usual budget, or
    without end with no timeout (the round waits for every label). A call that outlives its
    deadline anyway is retried and joins the service's waiting judgement (nothing asked twice).
    """
    if run.spec.judge.kind != "human":
        return config
    human = run.spec.judge.human
    timeout = human.round_timeout_seconds if human is not None else None
    if timeout is None:
        return replace(config, retry_timeout_seconds=math.inf)
    deadline = max(config.deadlines["judge"], timeout + PEOPLE_DEADLINE_MARGIN_SECONDS)
    return replace(
        config,
        deadlines={**config.deadlines, "judge": deadline},
        retry_timeout_seconds=config.retry_timeout_seconds + deadline,
    )


TRAINER_REF = "trainer_service.json"
"""What the engine's checkpoint holds for a remote trainer: the version to Restore."""


class TrainerClient:
    """TrainerRole over TrainerService.Train / Restore.

    The round index of a Train call is the model version before it (the engine trains once per
    round, so version == rounds completed); it keys the service's idempotency record. With
    ``pairs_by_id`` the request names the pairs by id only (the engine has published them to
    the annotations topic, which the trainer service consumes).
    """

    def __init__(
        self,
        run: ActiveRun,
        channel: grpc.Channel,
        config: ClientConfig,
        tracker: VersionTracker,
        pairs_by_id: bool = False,
        address: str = "",
    ) -> None:
        self.run_name = run.metadata.name
        self.stub = trainer_pb2_grpc.TrainerServiceStub(channel)
        self.caller = RetryingCaller("trainer", config, address)
        self.tracker = tracker
        self.pairs_by_id = pairs_by_id

    def train(
        self,
        pairs: list[PreferencePair],
        *,
        round_index: int,
        n_done: int,
        n_total: int,
        seed: int,
    ) -> TrainResult:
        request = trainer_pb2.TrainRequest(
            run=common_pb2.RunRef(run=self.run_name, round=round_index),
            prompts_done=n_done,
            prompts_total=n_total,
            seed=seed,
        )
        if self.pairs_by_id:
            request.pair_ids.extend(p.pair_id for p in pairs)
        else:
            request.pairs.extend(pair_to_msg(p) for p in pairs)
        reply = self.caller.call("Train", lambda kw: self.stub.Train(request, **kw))
        self.tracker.version = int(reply.model_version)
        return TrainResult(int(reply.model_version), dict(reply.metrics))

    def save_state(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TRAINER_REF).write_text(
            json.dumps({"run": self.run_name, "version": self.tracker.version}) + "\n"
        )

    def load_state(self, directory: Path) -> None:
        ref = directory / TRAINER_REF
        if not ref.exists():
            raise RuntimeError(
                f"{directory}: this checkpoint was written by an embedded run (no {TRAINER_REF}); "
                "resume it without --connect"
            )
        version = int(json.loads(ref.read_text())["version"])
        request = trainer_pb2.RestoreRequest(run=self.run_name, version=version)
        self.caller.call("Restore", lambda kw: self.stub.Restore(request, **kw))
        self.tracker.version = version


@dataclass
class ConnectedRoles:
    """The client roles of a run, their channels and the run's publisher (close when done)."""

    roles: Roles
    channels: list[grpc.Channel]
    judge: JudgeClient
    publisher: RunPublisher | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    config: ClientConfig = field(default_factory=ClientConfig)
    by_role: dict[str, grpc.Channel] = field(default_factory=dict)

    def wait_until_serving(self, report: Callable[[str], None] | None = None) -> None:
        """Block until every role's health check says SERVING (one ``report`` line per role).

        Why: started together, the services take different times to load their models; the
        driver must not start round 1 (and retry its way through) before all of them are up.
        """
        wait_until_serving(
            {r: (self.endpoints[r], self.by_role[r]) for r in ROLE_NAMES}, self.config, report
        )

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        if self.publisher is not None:
            self.publisher.bus.close()


def connect_roles(
    run: ActiveRun, endpoints: dict[str, str], config: ClientConfig | None = None
) -> ConnectedRoles:
    """Client roles for the five services at ``endpoints`` (see :func:`parse_connect`).

    With a ``kafka`` endpoint the run's topics are created up front (so services can follow
    them before the first round) and the result carries the engine's publisher.
    """
    from prefloop.engine.build import build_judge

    config = config or ClientConfig()
    publisher = None
    if KAFKA in endpoints:
        from prefloop.bus.kafka_bus import KafkaBus

        publisher = RunPublisher(
            KafkaBus(endpoints[KAFKA], client_id="prefloop-engine"), run.metadata.name
        )
        publisher.ensure_topics()
    channels = {role: open_channel(endpoints[role], config) for role in ROLE_NAMES}
    tracker = VersionTracker()
    ep = endpoints
    # a human judge's tokens live with the judge service: the driver only needs its name
    name = "human" if run.spec.judge.kind == "human" else build_judge(run).name
    judge = JudgeClient(run, channels["judge"], config, name, tracker, ep["judge"])
    roles = Roles(
        generation=GenerationClient(run, channels["generation"], config, ep["generation"]),
        reward=RewardClient(run, channels["reward"], config, tracker, ep["reward"]),
        acquisition=AcquisitionClient(run, channels["acquisition"], config, ep["acquisition"]),
        judge=judge,
        trainer=TrainerClient(
            run,
            channels["trainer"],
            config,
            tracker,
            pairs_by_id=publisher is not None,
            address=ep["trainer"],
        ),
    )
    return ConnectedRoles(
        roles,
        list(channels.values()),
        judge,
        publisher,
        endpoints=dict(endpoints),
        config=config,
        by_role=channels,
    )
