"""Typed publishing of one run's records: what the engine and the services call.

:class:`RunPublisher` turns the round engine's objects (prompt items, reward arrays, selections,
judgements, dataset rows, checkpoints) into keyed records with deterministic message ids on the
run's topics. Calling a method twice with the same arguments publishes records with the same ids,
so a retried round or a restarted service never duplicates anything downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prefloop.acquisition.base import Selection
from prefloop.bus.base import Bus, Record, TopicKind, run_topics, topic_name
from prefloop.bus.idempotent import message_id
from prefloop.bus.payloads import (
    annotation_value,
    checkpoint_value,
    completion_value,
    judgement_value,
    pair_training_fields,
    score_value,
    selection_value,
)
from prefloop.data.records import PreferencePair, PromptItem
from prefloop.judge.base import Judgement, JudgeRequest


class RunPublisher:
    """Publishes a run's completions, scores, selections, judgements, annotations, checkpoints."""

    def __init__(self, bus: Bus, run: str) -> None:
        topic_name(run, "annotations")  # validates the run name
        self.bus = bus
        self.run = run

    def topic(self, kind: TopicKind) -> str:
        """This run's topic of ``kind``."""
        return topic_name(self.run, kind)

    def ensure_topics(self) -> None:
        """Create every topic of the run (so consumers can subscribe before the first round)."""
        self.bus.ensure_topics(run_topics(self.run))

    def _publish(self, kind: TopicKind, records: list[Record]) -> int:
        if records:
            self.bus.publish(self.topic(kind), records)
        return len(records)

    @staticmethod
    def _check_round(round: int) -> None:
        if isinstance(round, bool) or not isinstance(round, int | np.integer) or round < 0:
            raise ValueError(f"round must be an integer >= 0, got {round!r}")

    def completions(self, round: int, items: Sequence[PromptItem]) -> int:
        """One record per prompt with all its responses; returns the number published."""
        self._check_round(round)
        records = [
            Record(
                it.prompt_id,
                message_id(self.run, "completions", round=round, prompt_id=it.prompt_id),
                completion_value(round, it),
            )
            for it in items
        ]
        return self._publish("completions", records)

    def scores(
        self,
        round: int,
        prompt_ids: Sequence[str],
        mean: np.ndarray,
        std: np.ndarray,
        *,
        model_version: int | None = None,
    ) -> int:
        """One record per prompt with the reward mean and std of each response.

        ``mean`` and ``std`` are the ``(P, N)`` arrays of :class:`RewardScores` (NaN padded).
        """
        self._check_round(round)
        mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        if mean.ndim != 2 or mean.shape != std.shape or mean.shape[0] != len(prompt_ids):
            raise ValueError(
                f"scores: mean {mean.shape} and std {std.shape} must both be "
                f"(len(prompt_ids)={len(prompt_ids)}, N)"
            )
        part = None if model_version is None else f"v{model_version}"
        records = [
            Record(
                pid,
                message_id(self.run, "scores", round=round, prompt_id=pid, part=part),
                score_value(round, pid, mean[p].tolist(), std[p].tolist(), model_version),
            )
            for p, pid in enumerate(prompt_ids)
        ]
        return self._publish("scores", records)

    def selections(
        self,
        round: int,
        prompt_ids: Sequence[str],
        selection: Selection,
        *,
        method: str,
        pair_ids: Sequence[str] | None = None,
    ) -> int:
        """One record per selected pair; ``prompt_ids[i]`` is the id of batch row ``i``."""
        self._check_round(round)
        if pair_ids is not None and len(pair_ids) != selection.size:
            raise ValueError(
                f"selections: {len(pair_ids)} pair_ids for {selection.size} selected pairs"
            )
        records = []
        for m in range(selection.size):
            row = int(selection.prompt_index[m])
            if not 0 <= row < len(prompt_ids):
                raise ValueError(
                    f"selections: prompt_index[{m}]={row} is outside the {len(prompt_ids)} prompts"
                )
            pid = prompt_ids[row]
            first, second = int(selection.first[m]), int(selection.second[m])
            part = f"{min(first, second)}-{max(first, second)}"
            records.append(
                Record(
                    pid,
                    message_id(self.run, "selections", round=round, prompt_id=pid, part=part),
                    selection_value(
                        round,
                        pid,
                        first,
                        second,
                        float(selection.score[m]),
                        int(selection.pseudo_label[m]),
                        method,
                        None if pair_ids is None else pair_ids[m],
                    ),
                )
            )
        return self._publish("selections", records)

    def judgements(
        self, round: int, requests: Sequence[JudgeRequest], verdicts: Sequence[Judgement]
    ) -> int:
        """One record per judged pair, keyed by its prompt."""
        self._check_round(round)
        if len(requests) != len(verdicts):
            raise ValueError(f"judgements: {len(verdicts)} verdicts for {len(requests)} requests")
        records = [
            Record(
                req.item.prompt_id,
                message_id(self.run, "judgements", pair_id=req.pair_id),
                judgement_value(round, req, verdict),
            )
            for req, verdict in zip(requests, verdicts, strict=True)
        ]
        return self._publish("judgements", records)

    def annotations(
        self, round: int, rows: Sequence[dict[str, Any]], *, first_order: int = 0
    ) -> int:
        """The round's dataset rows, key = prompt id, msg_id = pair id, in dataset order.

        Why: the annotations topic alone must rebuild the dataset (``prefloop export``), and the
        trainer consumes it; ``order`` (``first_order`` + position) keeps the written order when
        a round's rows are published in several calls.
        """
        self._check_round(round)
        records = []
        for i, row in enumerate(rows):
            pair_id, prompt_id = row.get("pair_id"), row.get("prompt_id")
            if not isinstance(pair_id, str) or not isinstance(prompt_id, str):
                raise ValueError(f"annotations: rows[{i}] needs string pair_id and prompt_id")
            if row.get("round") != round:
                raise ValueError(
                    f"annotations: rows[{i}] (pair {pair_id}) is from round {row.get('round')!r}, "
                    f"published as round {round}"
                )
            records.append(
                Record(prompt_id, pair_id, annotation_value(round, first_order + i, dict(row)))
            )
        return self._publish("annotations", records)

    def labelled_pairs(self, round: int, pairs: Sequence[PreferencePair]) -> int:
        """A round's labelled pairs as annotations a trainer can train on (row + ``pair``).

        Why: the trainer service consumes the round's pairs from the annotations topic instead
        of the Train request; ``PreferencePair.to_row`` alone loses the raw prompt and indices
        its features depend on. Pseudo-labelled pairs are published too (the trainer needs
        them); ``rebuild_dataset`` leaves them out unless asked.
        """
        self._check_round(round)
        records = []
        for i, pair in enumerate(pairs):
            if pair.round != round:
                raise ValueError(
                    f"labelled_pairs: pairs[{i}] ({pair.pair_id}) is from round {pair.round}, "
                    f"published as round {round}"
                )
            records.append(
                Record(
                    pair.prompt_id,
                    pair.pair_id,
                    annotation_value(round, i, pair.to_row(), pair_training_fields(pair)),
                )
            )
        return self._publish("annotations", records)

    def checkpoint(self, version: int, uri: str, state_bytes: bytes | None = None) -> int:
        """Announce reward-model ``version`` (keyed by the run, so versions stay in order)."""
        record = Record(
            self.run,
            message_id(self.run, "checkpoints", part=version),
            checkpoint_value(version, uri, state_bytes),
        )
        return self._publish("checkpoints", [record])
