"""The judge service with people as the judge (``judge.kind: human``): page, RPC and votes topic.

``prefloop serve judge RUN.yaml --port P --ui-port U [--kafka HOST:PORT]`` runs the usual
:class:`~prefloop.rpc.judge_service.JudgeServicer` over a
:class:`~prefloop.judge.human.judge.HumanJudge` and serves the labelling page on ``--ui-port``
from a thread of the same process (one writer of the label store, as with ``prefloop judge-ui``).
The engine's Judge RPC then waits until the round's pairs have their votes (or the round times
out), so a call lasts as long as people take:

- the engine's client gives a human judge's call a deadline past the round timeout and a retry
  budget without end when there is no timeout (``rpc/clients.py``); a call that still outlives
  its deadline is retried, and the retry *joins* the judgement already waiting
  (``JudgeServicer`` keys in-flight judgements by their pair ids), so the people are asked once
  and a pair is recorded once; labelled pairs are in the verdict log, so any later retry is
  answered from it;
- pairs a timed-out round could not label come back failed and unlogged: the engine asks for
  them again in its next round (``onTimeout: carry``) and the queue keeps their votes.

With ``--kafka`` every label, undo and drop goes to the run's judgements topic the moment it is
given (after it is fsynced to ``<state-dir>/human-labels/events.jsonl``), as a record with
``record: "vote"`` (:func:`vote_value`); the pair's verdict follows, as for every judge, when the
RPC answers. A vote that cannot be published right away (broker down) is kept and published
before the next reply, which is UNAVAILABLE (retried) until the broker takes it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prefloop.bus.base import BusError, Record
from prefloop.bus.idempotent import message_id
from prefloop.bus.publisher import RunPublisher
from prefloop.judge.base import Judgement, JudgeRequest
from prefloop.judge.human.judge import HumanJudge
from prefloop.judge.human.server import PageServer
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.judge_service import JudgeServicer, register
from prefloop.rpc.server import Registrar, StartupError, Unavailable

log = logging.getLogger("prefloop.rpc.human")

VOTE_FIELDS = ("annotator", "choice", "a_on_left", "batch", "rationale", "unix_time")


def vote_value(event: dict[str, Any], request: JudgeRequest) -> dict[str, Any]:
    """The judgements-topic value of one label, undo or drop event of the human judge.

    Why a ``record`` field: the topic also carries the pair verdicts (no ``record`` field); a
    reader tells a person's vote from the pair's label by it.
    """
    value = {
        "record": "vote",
        "event": event["event"],
        "pair_id": request.pair_id,
        "prompt_id": request.item.prompt_id,
        "a_model": request.a.model,
        "b_model": request.b.model,
    }
    value.update({k: event.get(k) for k in VOTE_FIELDS})
    return value


class VotePublisher:
    """Publishes the queue's events to the judgements topic as they happen (see module doc)."""

    def __init__(self, publisher: RunPublisher) -> None:
        self.publisher = publisher
        self.pending: list[Record] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], request: JudgeRequest) -> None:
        """A queue listener: publish ``event`` now; keep it for later if the broker fails."""
        part = f"{event['event']}/{event.get('annotator') or '-'}/{event.get('unix_time')}"
        record = Record(
            request.item.prompt_id,
            message_id(self.publisher.run, "judgements", pair_id=request.pair_id, part=part),
            vote_value(event, request),
        )
        with self._lock:
            self.pending.append(record)
        try:
            self.flush()
        except BusError as e:
            log.warning("votes topic: %s; kept %d vote(s) to publish later", e, len(self.pending))

    def flush(self) -> None:
        """Publish every kept vote, in order (raises :class:`BusError` if the broker fails)."""
        with self._lock:
            if self.pending:
                self.publisher.bus.publish(self.publisher.topic("judgements"), self.pending)
                self.pending = []


class HumanJudgeServicer(JudgeServicer):
    """The judge servicer whose verdict publishing first publishes the votes kept back."""

    def __init__(self, ctx: ServiceContext, judge: HumanJudge) -> None:
        super().__init__(ctx, judge)
        self.human = judge
        self.votes = VotePublisher(self.publisher) if self.publisher is not None else None
        if self.votes is not None:
            judge.queue.listeners.append(self.votes)

    async def _publish(
        self, reqs: list[JudgeRequest], answers: list[Judgement], round: int
    ) -> None:
        if self.votes is not None:
            try:
                self.votes.flush()
            except BusError as exc:
                raise Unavailable(f"judgements topic (votes): {exc}") from exc
        await super()._publish(reqs, answers, round)


def human_judge_service(
    ctx: ServiceContext, ui_host: str, ui_port: int | None
) -> tuple[Registrar, PageServer, HumanJudgeServicer]:
    """The judge service of a human-judged run and its labelling page, started on the UI port.

    Raises:
        StartupError: no ``--ui-port``, tokens that cannot work, or a UI port in use.
    """
    if ui_port is None:
        raise StartupError(
            "judge.kind: human: the judge service serves the labelling page; give it a port "
            "with --ui-port (and --ui-host to open it beyond loopback)"
        )
    from prefloop.engine.build import build_judge

    try:  # the tokens are read here, where the people sign in
        judge = build_judge(
            ctx.run, ctx.manifest_dir, ctx.state_dir / f"judge-cache-{ctx.run_name}"
        )
    except ValueError as e:
        raise StartupError(str(e)) from None
    assert isinstance(judge, HumanJudge)
    servicer = HumanJudgeServicer(ctx, judge)
    try:
        page = PageServer(judge, ui_host, ui_port).start()
    except OSError as e:
        servicer.close()
        raise StartupError(f"labelling page: cannot bind {ui_host}:{ui_port}: {e}") from None
    return register(servicer), page, servicer
