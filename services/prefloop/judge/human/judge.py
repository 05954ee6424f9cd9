"""The human judge: ``judge()`` queues the round's pairs and waits until people have labelled them.

Design (docs/human-judge.md): the page and the judge share one process, so the queue has a
single writer and needs no cross-process locking; the durable event log makes a restart
(``--resume``) lose nothing. ``prefloop judge-ui RUN.yaml --port P`` runs the embedded loop with
the page in a thread; in service mode the judge service does (``prefloop serve judge ...
--ui-port U``, :mod:`prefloop.rpc.human_judge_service`). Plain ``prefloop run`` has no page, so
it (and ``prefloop validate``) refuses ``judge.kind: human`` before anything is written
(:func:`check_human_run`).

The verdict of a pair is the majority of its votes (A, B, tie); equal A and B counts, or a tie
majority, is a tie whose winner is the first response in canonical order (response id), as the
other judges' ``tiePolicy: first``. ``probability_a`` is the share of votes for A (ties count
half). When the round times out, pairs still short of votes come back as failed judgements
(never labelled by anything else): the engine spends no budget on them and records them as
failed; ``onTimeout: carry`` keeps them in the queue (first in line, shown only to people who
have not labelled them) and the engine asks for them again with its next round's pairs (and on
``--resume``), so their votes are taken then; ``drop`` removes them for good.

Each round's agreement (Cohen's kappa for two votes per pair, Fleiss' for more), the share of
votes for the left side (position bias) and the counts are appended to
``<run>/human-labels/rounds.jsonl`` and kept in :attr:`HumanJudge.last_round_metrics`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from prefloop.judge.base import (
    JudgeError,
    Judgement,
    JudgeRequest,
    failed_judgement,
    response_key,
)
from prefloop.judge.human.agreement import CATEGORIES, agreement
from prefloop.judge.human.queue import LabelQueue
from prefloop.spec import ActiveRun, SpecError, resolve_path
from prefloop.spec_human import HumanJudgeSpec

HUMAN_LABELS_DIR = "human-labels"
"""Where an embedded run keeps the people's votes (beside ``judge-cache``)."""
ROUNDS_FILE = "rounds.jsonl"
NO_PAGE = (
    "spec.judge.kind: human needs people and a page to label on, which `prefloop run` alone "
    "does not serve: run `prefloop judge-ui RUN.yaml --port P` (embedded, the page in the same "
    "process), or serve the judge with `prefloop serve judge RUN.yaml --port P --ui-port U` and "
    "drive it with `prefloop run RUN.yaml --connect judge=HOST:P,...` (service mode); "
    "docs/human-judge.md"
)
RUN_MODES = ("run", "judge-ui", "services")
"""What ``prefloop validate --for`` checks a manifest for: embedded ``prefloop run``, ``prefloop
judge-ui``, or a driver of role services (``prefloop run --connect``)."""


class HumanJudge:
    """Labels pairs by people's majority vote on the labelling page (see module doc)."""

    def __init__(
        self,
        queue: LabelQueue,
        *,
        tokens: dict[str, str],
        leads: list[str],
        round_timeout_seconds: float | None,
        on_timeout: str,
        max_annotations: int | None = None,
        name: str = "human",
    ) -> None:
        check_tokens(tokens, leads, queue.annotators_per_pair)
        self.queue = queue
        self.tokens = tokens
        self.leads = leads
        self.round_timeout_seconds = round_timeout_seconds
        self.on_timeout = on_timeout
        self.max_annotations = max_annotations
        self.name = name
        self.page_attached = threading.Event()
        """Set by the labelling page's server; without it nobody can label (see ``NO_PAGE``)."""
        self.last_round_metrics: dict[str, Any] = {}

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        """Queue ``requests``, wait for their votes (or the round timeout), return verdicts."""
        if not requests:
            return []
        if not self.page_attached.is_set():
            raise JudgeError(NO_PAGE)
        q = self.queue
        pids = [r.pair_id for r in requests]
        deadline = (  # taken before the pairs are shown: the round's timeout is fixed now
            None
            if self.round_timeout_seconds is None
            else time.monotonic() + self.round_timeout_seconds
        )
        batch = q.ask(requests)

        def done() -> bool:
            return all(q.decided(pid) or q.dropped(pid) for pid in pids)

        with q.changed:
            while not done():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                q.changed.wait(timeout=left)
            verdicts = [self._verdict(r) for r in requests]
            q.close(pids, drop=self.on_timeout == "drop")
        self.last_round_metrics = self._round_metrics(batch, requests, verdicts)
        self._write_round_metrics()
        return verdicts

    def _verdict(self, req: JudgeRequest) -> Judgement:
        q = self.queue
        if q.dropped(req.pair_id):
            return failed_judgement(req.pair_id, "human: dropped when its round timed out")
        if not q.decided(req.pair_id):
            action = "dropped" if self.on_timeout == "drop" else "carried to the next round"
            return failed_judgement(
                req.pair_id, f"human: round timed out before the votes; {action}"
            )
        votes = q.votes_of(req.pair_id)[: q.annotators_per_pair]
        tally = {c: sum(v.choice == c for v in votes) for c in CATEGORIES}
        n = len(votes)
        tie = tally["a"] == tally["b"] or tally["tie"] > max(tally["a"], tally["b"])
        if tie:
            winner = 0 if response_key(req.a) <= response_key(req.b) else 1
        else:
            winner = 0 if tally["a"] > tally["b"] else 1
        rationales = [f"{v.annotator}: {v.rationale}" for v in votes if v.rationale]
        return Judgement(
            pair_id=req.pair_id,
            winner=winner,
            probability_a=(tally["a"] + 0.5 * tally["tie"]) / n,
            tie=tie,
            rationale="\n".join(rationales) or None,
            aspects={f"votes.{c}": float(k) for c, k in tally.items()},
        )

    def _round_metrics(
        self, batch: int, requests: list[JudgeRequest], verdicts: list[Judgement]
    ) -> dict[str, Any]:
        """Counts, agreement and position bias of one round (see module doc)."""
        q = self.queue
        k = q.annotators_per_pair
        decided = [r.pair_id for r, v in zip(requests, verdicts, strict=True) if not v.failed]
        matrix = np.array(
            [[CATEGORIES.index(v.choice) for v in q.votes_of(pid)[:k]] for pid in decided],
            dtype=np.int64,
        ).reshape(len(decided), k)
        kind, kappa = agreement(matrix)
        sided = [v for pid in decided for v in q.votes_of(pid)[:k] if v.choice in ("a", "b")]
        left = [(v.choice == "a") == v.a_on_left for v in sided]
        failed = len(requests) - len(decided)
        return {
            "human_batch": batch,
            "human_pairs_asked": len(requests),
            "human_pairs_labelled": len(decided),
            "human_pairs_carried": failed if self.on_timeout == "carry" else 0,
            "human_pairs_dropped": failed if self.on_timeout == "drop" else 0,
            "human_votes": int(matrix.size),
            "human_agreement_kind": kind,
            "human_agreement_kappa": kappa,
            "human_left_share": float(np.mean(left)) if left else float("nan"),
        }

    def _write_round_metrics(self) -> None:
        directory = self.queue.directory
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / ROUNDS_FILE).open("a", encoding="utf-8") as f:
            f.write(json.dumps(self.last_round_metrics) + "\n")
            f.flush()
            os.fsync(f.fileno())


def check_tokens(tokens: dict[str, str], leads: list[str], annotators_per_pair: int) -> None:
    """Refuse token sets that cannot work: empty or shared tokens, too few people, unknown leads.

    Why: a pair needing three votes from two people would wait forever; a shared token would let
    one person vote twice.
    """
    if not tokens:
        raise ValueError(
            "judge.human: no annotator tokens (set tokensFile or the tokensEnv variable)"
        )
    empty = sorted(name for name, token in tokens.items() if not token.strip())
    if empty:
        raise ValueError(f"judge.human: empty token for annotator(s) {', '.join(empty)}")
    if len(set(tokens.values())) != len(tokens):
        raise ValueError("judge.human: two annotators share a token; give each their own")
    if len(tokens) < annotators_per_pair:
        raise ValueError(
            f"judge.human.annotatorsPerPair is {annotators_per_pair} but only {len(tokens)} "
            "annotator token(s) are configured: no pair could get its votes"
        )
    unknown = sorted(set(leads) - set(tokens))
    if unknown:
        raise ValueError(f"judge.human.leads {', '.join(unknown)} have no token")


def check_human_run(run: ActiveRun, mode: str, manifest_dir: Path | None) -> None:
    """Refuse, before anything is written, a human-judged run started where nobody can label.

    Why: embedded ``prefloop run`` has no page, so a human-judged run would fail only at its
    first round, after building its models. ``mode`` is one of :data:`RUN_MODES`; for
    ``judge-ui`` the annotators' tokens are checked too (the page needs them), while a driver of
    services needs none (the judge service holds them). Other judges pass in every mode.

    Raises:
        SpecError: ``mode`` is ``run`` (:data:`NO_PAGE`), or the tokens cannot work.
    """
    if mode not in RUN_MODES:
        raise ValueError(f"mode must be one of {', '.join(RUN_MODES)}, got {mode!r}")
    judge = run.spec.judge
    if judge.kind != "human":
        return
    if mode == "run":
        raise SpecError(
            f"{NO_PAGE}. `prefloop validate --for judge-ui` (or `--for services`) checks such a "
            "manifest."
        )
    if mode == "judge-ui":
        spec = judge.human or HumanJudgeSpec()
        try:
            check_tokens(
                load_tokens(spec, manifest_dir), list(spec.leads), spec.annotators_per_pair
            )
        except ValueError as e:
            raise SpecError(f"spec.{e}" if str(e).startswith("judge.") else str(e)) from None


def load_tokens(spec: HumanJudgeSpec, manifest_dir: Path | None) -> dict[str, str]:
    """The annotators' tokens: ``tokensFile`` (YAML name: token) or ``tokensEnv``
    (name=token,...)."""
    if spec.tokens_file is not None:
        path = resolve_path(spec.tokens_file, manifest_dir)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"judge.human.tokensFile {path}: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"judge.human.tokensFile {path}: expected a mapping name: token")
        return {str(k): str(v) for k, v in data.items()}
    raw = os.environ.get(spec.tokens_env, "")
    tokens: dict[str, str] = {}
    for n, part in enumerate(filter(None, (p.strip() for p in raw.split(","))), start=1):
        name, sep, token = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"${spec.tokens_env}: entry {n} is not name=token")
        tokens[name.strip()] = token.strip()
    return tokens


def human_judge_from_spec(
    spec: HumanJudgeSpec | None,
    *,
    seed: int,
    manifest_dir: Path | None,
    labels_dir: Path | None,
    max_annotations: int | None,
) -> HumanJudge:
    """The human judge of ``judge.human`` keeping its votes in ``labels_dir`` (memory if None)."""
    spec = spec or HumanJudgeSpec()
    queue = LabelQueue(labels_dir, annotators_per_pair=spec.annotators_per_pair, seed=seed)
    return HumanJudge(
        queue,
        tokens=load_tokens(spec, manifest_dir),
        leads=list(spec.leads),
        round_timeout_seconds=spec.round_timeout_seconds,
        on_timeout=spec.on_timeout,
        max_annotations=max_annotations,
    )
