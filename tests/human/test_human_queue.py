"""Kappa against hand-computed values; the label store survives a restart and a torn line; a
timed-out round's pairs come back failed (carried or dropped), never labelled."""

from __future__ import annotations

import math
from pathlib import Path

from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import JudgeRequest
from prefloop.judge.human.agreement import cohen_kappa, fleiss_kappa
from prefloop.judge.human.judge import HumanJudge
from prefloop.judge.human.queue import EVENTS_FILE, LabelQueue


def test_kappas_equal_hand_computed_values() -> None:
    # 4 items: agree on 3 (a, a, b), disagree on 1 (a vs b): p_o = 0.75,
    # marginals r1 = (3/4, 1/4, 0), r2 = (1/2, 1/2, 0): p_e = 3/8 + 1/8 = 0.5 -> kappa 0.5
    assert math.isclose(cohen_kappa([0, 0, 1, 0], [0, 0, 1, 1]), 0.5)
    # Fleiss, 2 items x 3 raters: (a, a, a), (b, b, a): P_i = 1, 1/3 -> P = 2/3;
    # shares a 4/6, b 2/6: P_e = 16/36 + 4/36 = 5/9 -> kappa (2/3 - 5/9) / (4/9) = 0.25
    assert math.isclose(fleiss_kappa([[0, 0, 0], [1, 1, 0]]), 0.25)
    assert math.isnan(cohen_kappa([0, 0], [0, 0]))


def _request(n: int) -> JudgeRequest:
    a, b = Response(model="m1", text=f"one {n}"), Response(model="m2", text=f"two {n}")
    return JudgeRequest(f"pair-{n}", PromptItem(f"p{n}", f"prompt {n}", (a, b)), a, b)


def test_restart_keeps_votes_and_never_shows_a_pair_twice(tmp_path: Path) -> None:
    q = LabelQueue(tmp_path, annotators_per_pair=2, seed=1)
    q.ask([_request(1), _request(2)])
    q.give("alice", "pair-1", "a", "clearer")
    with (tmp_path / EVENTS_FILE).open("ab") as f:
        f.write(b'{"event": "label", "pair_id": "pair-2"')  # a crash mid-write
    again = LabelQueue(tmp_path, annotators_per_pair=2, seed=1)
    again.ask([_request(1), _request(2)])
    assert [v.annotator for v in again.votes_of("pair-1")] == ["alice"]
    nxt = again.next_for("alice")
    assert nxt is not None and nxt.request.pair_id == "pair-2"
    assert (tmp_path / EVENTS_FILE).read_bytes().endswith(b"\n")


def test_timeout_fails_pairs_and_drop_removes_them(tmp_path: Path) -> None:
    judge = HumanJudge(
        LabelQueue(tmp_path, annotators_per_pair=1, seed=1),
        tokens={"alice": "t"},
        leads=[],
        round_timeout_seconds=0.01,
        on_timeout="drop",
    )
    judge.page_attached.set()
    [verdict] = judge.judge([_request(1)])
    assert verdict.failed and "timed out" in (verdict.failure or "")
    assert judge.queue.next_for("alice") is None
    assert judge.last_round_metrics["human_pairs_dropped"] == 1
    [again] = judge.judge([_request(1)])
    assert again.failed and "dropped" in (again.failure or "")
