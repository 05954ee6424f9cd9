"""`prefloop bench label-efficiency` with policy-in-the-loop methods (issue 11).

``policy:adpo`` and ``policy:ae_borda`` with ``--policy tiny`` (a tiny random Llama built from a
config, tokenizer trained on the bench data) run beside Random on a tiny AlpacaEval slice: their
points carry the policy's held-out accuracy, ADPO's judge calls are its queries only, and the
query rate per round (queries / (queries + pseudo-labels)) is in query_rate.csv and summary.md.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from prefloop.cli import main

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _bench(data: Path, out: Path, methods: str, *extra: str) -> int:
    return main(
        [
            "bench", "label-efficiency", "--data", str(data), "--methods", methods,
            "--seeds", "1", "--budget", "8", "--batch-size", "5", "--max-length-tokens", "32",
            "--num-heads", "4", "--epochs-per-round", "1", "--out", str(out), *extra,
        ]
    )  # fmt: skip


def test_policy_methods_sit_beside_reward_head_rules(tmp_path: Path) -> None:
    lines = (REPO / "data/hh_rlhf/harmless_dev.jsonl").read_text().splitlines()[:20]
    data = tmp_path / "tiny.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    methods = "random,policy:adpo,policy:ae_borda"
    assert _bench(data, out, methods, "--policy", "tiny", "--adpo-gamma", "0.02") == 0

    points = _rows(out / "points.csv")
    assert {p["method"] for p in points} == set(methods.split(","))
    for p in points:
        assert 0.0 <= float(p["heldout_accuracy"]) <= 1.0, p["method"]
        assert int(p["annotations"]) <= 8
    adpo = [p for p in points if p["method"] == "policy:adpo"]
    total = 0
    for p in adpo:  # one candidate pair per prompt: every one is a query or a pseudo-label,
        # unless the budget cut the round's queries (pseudo-labels cost nothing, never cut)
        total += int(p["queries"])
        assert int(p["annotations"]) == total  # the judge is paid for queries only
        kept = int(p["queries"]) + int(p["pseudo_labels"])
        assert kept == 5 if total < 8 else kept <= 5
    assert sum(int(p["pseudo_labels"]) for p in adpo) > 0

    rates = _rows(out / "query_rate.csv")
    assert {r["method"] for r in rates} == {"policy:adpo"}
    assert len(rates) == len(adpo)
    for r, p in zip(rates, adpo, strict=True):
        q, s = int(p["queries"]), int(p["pseudo_labels"])
        assert float(r["query_rate"]) == pytest.approx(q / (q + s))
    md = (out / "summary.md").read_text()
    assert "Query rate per round" in md and "| policy:adpo | 1 |" in md
    assert "| policy:ae_borda |" in md
    assert (out / "tiny-policy" / "config.json").exists()


def test_policy_methods_need_a_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = REPO / "data/hh_rlhf/harmless_dev.jsonl"
    assert _bench(data, tmp_path / "a", "random,policy:adpo") == 2
    assert "--policy" in capsys.readouterr().err
    assert _bench(data, tmp_path / "b", "policy:maxmin", "--policy", "tiny") == 2
    assert "policy:adpo" in capsys.readouterr().err
    assert _bench(data, tmp_path / "c", "policy:adpo", "--policy", str(tmp_path)) == 2
    assert "config.json" in capsys.readouterr().err
