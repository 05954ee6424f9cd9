"""FeatureCache: each distinct text embedded once, persistence across reopen, compaction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prefloop.data.records import stable_id
from prefloop.reward.feature_cache import FeatureCache, FeatureCacheError


class CountingEmbedder:
    """A deterministic fake embedder that records every pair it is asked to embed."""

    def __init__(self, name: str = "fake:v1", dim: int = 5) -> None:
        self.name = name
        self.dim = dim
        self.calls: list[tuple[str, str]] = []

    def vector(self, prompt: str, response: str) -> np.ndarray:
        seed = int(stable_id(self.name, prompt, response), 16) % (2**32)
        return np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)

    def embed(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        self.calls.extend(zip(prompts, responses, strict=True))
        return np.stack([self.vector(p, r) for p, r in zip(prompts, responses, strict=True)])


def test_each_distinct_pair_is_embedded_once(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    cache = FeatureCache(tmp_path)
    prompts = ["p1", "p1", "p2", "p1"]
    responses = ["a", "b", "a", "a"]  # (p1, a) twice within the call
    out = cache.get_or_compute(prompts, responses, emb)
    assert sorted(emb.calls) == [("p1", "a"), ("p1", "b"), ("p2", "a")]
    expected = np.stack([emb.vector(p, r) for p, r in zip(prompts, responses, strict=True)])
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32
    again = cache.get_or_compute(["p2", "p3"], ["a", "c"], emb)
    assert emb.calls[3:] == [("p3", "c")]
    np.testing.assert_array_equal(again[0], expected[2])
    assert len(cache) == 4 and cache.rows_computed == 4


def test_survives_reopen_without_recomputing(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    first = FeatureCache(tmp_path)
    a = first.get_or_compute(["x", "y"], ["1", "2"], emb)
    first.get_or_compute(["z"], ["3"], emb)
    reopened = FeatureCache(tmp_path)
    fresh = CountingEmbedder()
    b = reopened.get_or_compute(["y", "x", "z"], ["2", "1", "3"], fresh)
    assert fresh.calls == []
    np.testing.assert_array_equal(b[:2], a[::-1])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_keys_separate_embedders_sharing_a_directory(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    small, large = CountingEmbedder("fake:small", 3), CountingEmbedder("fake:large", 7)
    assert cache.get_or_compute(["p"], ["r"], small).shape == (1, 3)
    assert cache.get_or_compute(["p"], ["r"], large).shape == (1, 7)
    assert len(small.calls) == len(large.calls) == 1
    assert FeatureCache.key("fake:small", "p", "r") == stable_id("fake:small", "p", "r")


def test_compaction_keeps_every_row_and_removes_old_shards(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    cache = FeatureCache(tmp_path, max_shards=3)
    texts = [f"r{i}" for i in range(5)]
    for t in texts:  # five appends: compaction triggers past three shards
        cache.get_or_compute(["p"], [t], emb)
    assert cache.num_shards() <= 3
    index = json.loads((tmp_path / "index.json").read_text())
    on_disk = sorted(p.name for p in tmp_path.glob("shard-*.npy"))
    assert on_disk == sorted(index["shards"])
    reopened = FeatureCache(tmp_path)
    fresh = CountingEmbedder()
    out = reopened.get_or_compute(["p"] * 5, texts, fresh)
    assert fresh.calls == []
    np.testing.assert_array_equal(out, np.stack([emb.vector("p", t) for t in texts]))


def test_an_orphaned_shard_from_a_crash_is_ignored_and_not_overwritten(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    cache = FeatureCache(tmp_path)
    cache.get_or_compute(["p"], ["a"], emb)
    orphan = tmp_path / "shard-000002.npy"  # written, but the index never named it
    np.save(orphan, np.zeros((1, 5), np.float32))
    reopened = FeatureCache(tmp_path)
    reopened.get_or_compute(["p"], ["b"], emb)
    assert orphan.exists()
    assert "shard-000003.npy" in json.loads((tmp_path / "index.json").read_text())["shards"]


def test_errors_name_the_problem(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    with pytest.raises(FeatureCacheError, match="2 prompts but 1 responses"):
        cache.get_or_compute(["a", "b"], ["c"], CountingEmbedder())

    class Broken(CountingEmbedder):
        def embed(self, prompts: list[str], responses: list[str]) -> np.ndarray:
            return np.zeros((len(prompts), self.dim + 1), np.float32)

    with pytest.raises(FeatureCacheError, match="returned shape"):
        cache.get_or_compute(["a"], ["b"], Broken())
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(FeatureCacheError, match="cannot read"):
        FeatureCache(tmp_path)


def test_empty_request_returns_an_empty_matrix(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    out = FeatureCache(tmp_path).get_or_compute([], [], emb)
    assert out.shape == (0, 5) and emb.calls == []
