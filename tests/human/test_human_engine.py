"""The round engine with people as the judge, labelling through the page's HTTP API on a real
uvicorn server: when the "person" picks the higher-scored response, the dataset rows equal the
stored-score oracle's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from _human_run import (
    choice_by_score,
    human_judge_spec,
    live_run,
    manifest,
    oracle_result,
    rows_without_judge,
    write_pool,
)


def _label_by_score(url: str, token: str, scores: dict[tuple[str, str], float], run: Any) -> int:
    """Label every pair shown to this person by the stored scores until the run ends."""
    headers = {"Authorization": f"Bearer {token}"}
    labelled = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while run.thread.is_alive():
            nxt = client.get("/api/next").json()
            pair = nxt["pair"]
            if pair is None:
                run.thread.join(0.05)
                continue
            choice = choice_by_score(pair, scores)
            r = client.post(
                "/api/label",
                data={"pair_id": pair["pair_id"], "choice": choice, "csrf": nxt["csrf"]},
            )
            assert r.status_code == 200, r.text
            labelled += 1
    return labelled


def test_human_labels_by_score_give_the_oracle_rows(
    repo_root: Path, tmp_path: Path, tokens_file: Path, human_feature_cache: Path
) -> None:
    pool = tmp_path / "pool.jsonl"
    scores = write_pool(repo_root, pool)
    oracle = oracle_result(tmp_path, pool, human_feature_cache, "same")
    human_manifest = manifest(
        tmp_path, pool, human_feature_cache, human_judge_spec(tokens_file), "same"
    )
    live = live_run(human_manifest, tmp_path / "human").start()
    labelled = _label_by_score(live.url, "alice-secret-token", scores, live)
    human = live.finish()

    assert labelled == len(oracle.rows) == 4
    assert (tmp_path / "human" / "human-labels" / "events.jsonl").read_text().count("\n") == 4
    assert rows_without_judge(human) == rows_without_judge(oracle)
    assert {r["judge"] for r in human.rows} == {"human"}
    # the judge's own round numbers (votes, agreement, position) land in the round metrics
    last = human.state.metrics[-1]
    assert last["human_pairs_asked"] == last["human_pairs_labelled"] == last["pairs_judged"]
    assert last["human_votes"] == last["human_pairs_labelled"]
    assert "human_agreement_kappa" in last and "human_left_share" in last
    assert "human_agreement_kappa" not in oracle.state.metrics[-1]
