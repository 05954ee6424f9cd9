"""A round that times out, in a running process, through the real page server: with ``carry``
its unlabelled pair comes back in the NEXT round of the same run, shown only to the annotator
who has not labelled it, and enters the dataset labelled by people; with ``drop`` it is never
shown again and is counted as dropped. Nothing else ever labels it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml
from _human_run import LiveRun, choice_by_score, human_judge_spec, live_run, manifest, write_pool

ALICE, BOB = "alice-secret-token", "bob-secret-token"


class Person:
    """One annotator labelling through the JSON API by the stored scores (higher wins)."""

    def __init__(self, url: str, token: str, scores: dict[tuple[str, str], float]) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.scores = scores

    def next_pair(self) -> dict[str, str] | None:
        return self.client.get("/api/next").json()["pair"]

    def wait_pair(self, live: LiveRun, timeout: float = 120) -> dict[str, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (pair := self.next_pair()) is not None:
                return pair
            assert live.thread is not None and live.thread.is_alive(), live.error
            time.sleep(0.05)
        raise AssertionError("no pair shown")

    def label(self, pair: dict[str, str]) -> None:
        choice = choice_by_score(pair, self.scores)
        csrf = self.client.get("/api/next").json()["csrf"]
        r = self.client.post(
            "/api/label", data={"pair_id": pair["pair_id"], "choice": choice, "csrf": csrf}
        )
        assert r.status_code == 200, r.text

    def batch(self) -> int:
        return int(self.client.get("/api/progress").json()["batch"])


@pytest.mark.parametrize("on_timeout", ["carry", "drop"])
def test_timed_out_pair_is_carried_into_the_next_round_or_dropped(
    repo_root: Path, tmp_path: Path, tokens_file: Path, human_feature_cache: Path, on_timeout: str
) -> None:
    pool = tmp_path / "pool.jsonl"
    scores = write_pool(repo_root, pool)
    spec = human_judge_spec(
        tokens_file, annotatorsPerPair=2, roundTimeoutSeconds=3.0, onTimeout=on_timeout
    )
    live = live_run(manifest(tmp_path, pool, human_feature_cache, spec), tmp_path / "run").start()
    alice, bob = Person(live.url, ALICE, scores), Person(live.url, BOB, scores)

    # round 0 asks two pairs: alice labels both, bob only the first; the round times out
    first = alice.wait_pair(live)
    alice.label(first)
    second = alice.wait_pair(live)
    alice.label(second)
    assert bob.wait_pair(live)["pair_id"] == first["pair_id"]
    bob.label(first)
    # round 0 keeps the deadline it started with; the next round waits for every label
    live.judge.round_timeout_seconds = None
    while bob.batch() < 2:
        assert live.thread is not None and live.thread.is_alive(), live.error
        time.sleep(0.05)

    # round 1: alice never sees the pair she labelled; bob sees it first (carry) or never (drop)
    shown_to_bob: list[str] = []
    while live.thread is not None and live.thread.is_alive():
        progressed = False
        for person, shown in ((bob, shown_to_bob), (alice, [])):
            pair = person.next_pair()
            if pair is not None:
                assert person is bob or pair["pair_id"] != second["pair_id"]
                shown.append(pair["pair_id"])
                person.label(pair)
                progressed = True
        if not progressed:
            live.thread.join(0.05)
    result = live.finish()

    events = [
        json.loads(line)
        for line in (tmp_path / "run" / "human-labels" / "events.jsonl").read_text().splitlines()
    ]
    votes_on_second = [
        (e["event"], e.get("annotator")) for e in events if e["pair_id"] == second["pair_id"]
    ]
    round0, round1 = result.state.metrics
    assert round0["judge_failures"] == 1 and round0["pairs_judged"] == 1
    by_pair = {r["pair_id"]: r for r in result.rows}
    if on_timeout == "carry":
        assert shown_to_bob[0] == second["pair_id"]
        assert round0["human_pairs_carried"] == 1 and round0["human_pairs_dropped"] == 0
        assert votes_on_second == [("label", "alice"), ("label", "bob")]
        row = by_pair[second["pair_id"]]
        assert row["round"] == 1 and row["judge"] == "human" and row["label_source"] == "judge"
        assert row["chosen_score"] >= row["rejected_score"]
        assert round1["pairs_judged"] == 3 and round1["judge_failures_pending"] == 0
        assert len(result.rows) == result.state.annotations_used == 4
    else:
        assert second["pair_id"] not in shown_to_bob
        assert round0["human_pairs_dropped"] == 1 and round0["human_pairs_carried"] == 0
        assert votes_on_second == [("label", "alice"), ("drop", None)]
        assert second["pair_id"] not in by_pair
        assert round1["pairs_judged"] == 2
        assert len(result.rows) == result.state.annotations_used == 3
    # only people labelled: every row's judge is the human judge
    assert {r["judge"] for r in result.rows} == {"human"}


def test_carried_pairs_that_fill_the_budget_leave_a_batch_rule_nothing_to_select(
    repo_root: Path, tmp_path: Path, tokens_file: Path, human_feature_cache: Path
) -> None:
    pool = tmp_path / "pool.jsonl"
    scores = write_pool(repo_root, pool)
    spec = human_judge_spec(tokens_file, roundTimeoutSeconds=2.0, onTimeout="carry")
    path = manifest(tmp_path, pool, human_feature_cache, spec)
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["acquisition"] = {"method": "ae_dpo"}  # a batch rule: it takes max_pairs >= 1
    doc["spec"]["budget"] = {"maxAnnotations": 2}
    path.write_text(yaml.safe_dump(doc))
    live = live_run(path, tmp_path / "run").start()
    alice = Person(live.url, ALICE, scores)
    alice.wait_pair(live)  # round 0 shows its two pairs; nobody labels them: both carried
    live.judge.round_timeout_seconds = None
    while alice.batch() < 2:
        assert live.thread is not None and live.thread.is_alive(), live.error
        time.sleep(0.05)
    while live.thread is not None and live.thread.is_alive():
        if (pair := alice.next_pair()) is not None:
            alice.label(pair)
        else:
            live.thread.join(0.05)
    result = live.finish()

    round0, round1 = result.state.metrics
    assert round0["judge_failures"] == 2 and round0["pairs_judged"] == 0
    # round 1: the carried pairs take the whole budget; the rule's new pair is cut to fit
    assert round1["pairs_judged"] == 2 and round1["budget_truncated"] == 1
    assert len(result.rows) == result.state.annotations_used == 2
    assert {r["round"] for r in result.rows} == {1}


def test_resume_asks_carried_pairs_with_the_next_round_in_one_batch(
    repo_root: Path, tmp_path: Path, tokens_file: Path, human_feature_cache: Path
) -> None:
    pool = tmp_path / "pool.jsonl"
    scores = write_pool(repo_root, pool)
    spec = human_judge_spec(tokens_file, roundTimeoutSeconds=1.0, onTimeout="carry")
    path = manifest(tmp_path, pool, human_feature_cache, spec)
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["budget"]["maxRounds"] = 1
    path.write_text(yaml.safe_dump(doc))
    first = live_run(path, tmp_path / "run").start()  # one round, nobody labels: 2 carried
    stopped = first.finish()
    assert len(stopped.state.judge_failures) == 2 and not stopped.rows

    doc["spec"]["budget"]["maxRounds"] = 2  # a budget may change on resume
    path.write_text(yaml.safe_dump(doc))
    live = live_run(path, tmp_path / "run", resume=True)
    live.judge.round_timeout_seconds = None  # this time every pair waits for its label
    live.start()
    alice = Person(live.url, ALICE, scores)
    shown: list[str] = []
    while live.thread is not None and live.thread.is_alive():
        if (pair := alice.next_pair()) is not None:
            shown.append(pair["pair_id"])
            alice.label(pair)
        else:
            live.thread.join(0.05)
    result = live.finish()

    carried = set(stopped.state.judge_failures)
    assert set(shown[:2]) == carried  # the carried pairs come first ...
    assert live.judge.queue.batch == 1  # ... in the resumed round's one batch, no wait apart
    assert len(result.rows) == result.state.annotations_used == 4
    assert {r["pair_id"] for r in result.rows if r["round"] == 1} >= carried
    assert not result.state.judge_failures
