"""The judgement cache keeps every stored answer across restarts, atomically, keyed by config."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefloop.judge.cache import JudgementCache, JudgementCacheError, cache_key


def test_answers_survive_a_new_cache_on_the_same_directory(tmp_path: Path) -> None:
    cache = JudgementCache(tmp_path / "c")
    k1, k2 = cache_key("cfg", "rubric", "honesty", "p", "r1"), cache_key("cfg", "x")
    cache.put_many({k1: {"probabilities": [0.0, 0.0, 0.0, 1.0, 0.0]}})
    cache.put_many({k2: {"probabilities": [1.0]}})
    shards = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert shards == ["shard-000000.jsonl", "shard-000001.jsonl"]
    again = JudgementCache(tmp_path / "c")
    assert len(again) == 2 and again.get(k1) == {"probabilities": [0.0, 0.0, 0.0, 1.0, 0.0]}
    assert k2 in again and again.get("missing") is None


def test_keys_depend_on_the_judge_configuration_and_every_part() -> None:
    base = cache_key("cfg", "rubric", "honesty", "p", "r")
    assert base == cache_key("cfg", "rubric", "honesty", "p", "r")
    assert base != cache_key("cfg2", "rubric", "honesty", "p", "r")
    assert base != cache_key("cfg", "rubric", "helpfulness", "p", "r")
    assert base != cache_key("cfg", "rubric", "honesty", "p", "r ")


def test_shards_are_merged_when_they_pile_up(tmp_path: Path) -> None:
    cache = JudgementCache(tmp_path, max_shards=3)
    for i in range(5):
        cache.put_many({f"k{i}": i})
    assert len(list(tmp_path.glob("shard-*.jsonl"))) <= 3
    assert {k: JudgementCache(tmp_path).get(k) for k in cache._values} == {
        f"k{i}": i for i in range(5)
    }
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_damaged_shard_is_named(tmp_path: Path) -> None:
    JudgementCache(tmp_path).put_many({"k": 1})
    (tmp_path / "shard-000000.jsonl").write_text('{"key": "k", "val')
    with pytest.raises(JudgementCacheError, match=r"shard-000000.jsonl is unreadable"):
        JudgementCache(tmp_path)


def test_memory_only_cache_writes_nothing(tmp_path: Path) -> None:
    cache = JudgementCache(None)
    cache.put_many({"k": 1})
    assert cache.get("k") == 1 and list(tmp_path.iterdir()) == []
