"""A persistent, append-only cache of frozen text features, keyed by embedder and text.

Embedding is the expensive step of the reward model, and the loop asks for the same responses
again and again (scoring every round, then training on the judged pairs, then resuming after a
restart). The cache makes each distinct (embedder, prompt, response) cost one forward pass per
run directory, ever - the precompute-once recipe of ActiveUltraFeedback
(https://arxiv.org/abs/2603.09692).

On disk, in one directory:

* ``shard-NNNNNN.npy``: float32 matrices, one per batch of newly computed rows, never modified;
* ``index.json``: ``{"version": 1, "shards": {name: {"rows", "dim"}}, "keys": {key: [name, row]}}``.

An append writes the new shard to a temporary file and renames it into place, then does the
same for the index, so a crash leaves either the old or the new index, never a torn one (an
orphaned shard is ignored and its number is never reused). When shards pile up (more than
``max_shards``) they are compacted into one, with the same write-then-rename discipline.
Keys are ``stable_id(embedder.name, prompt, response)`` (sha256), so the cache can be shared by
several embedders. One process writes a cache directory at a time.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from prefloop.data.atomic import atomic_target, atomic_write_bytes
from prefloop.data.records import stable_id
from prefloop.reward.base import Embedder

INDEX_FILE = "index.json"
INDEX_VERSION = 1
_SHARD_RE = re.compile(r"^shard-(\d{6})\.npy$")


class FeatureCacheError(RuntimeError):
    """The cache directory is unreadable or inconsistent, or an embedder broke its contract."""


def _atomic_save_npy(path: Path, matrix: np.ndarray) -> None:
    with atomic_target(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, matrix, allow_pickle=False)


class FeatureCache:
    """Features of (prompt, response) pairs per embedder, persisted in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], max_shards: int = 64) -> None:
        if max_shards < 1:
            raise FeatureCacheError(f"max_shards must be >= 1, got {max_shards}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_shards = int(max_shards)
        self._shards: dict[str, dict[str, int]] = {}
        self._keys: dict[str, tuple[str, int]] = {}
        self._loaded: dict[str, np.ndarray] = {}
        self.rows_computed = 0
        self._load_index()

    # -- index ----------------------------------------------------------------------------
    def _load_index(self) -> None:
        path = self.directory / INDEX_FILE
        if not path.exists():
            return
        try:
            index: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise FeatureCacheError(f"cannot read feature-cache index {path}: {exc}") from exc
        if index.get("version") != INDEX_VERSION:
            raise FeatureCacheError(
                f"{path}: index version {index.get('version')!r}, expected {INDEX_VERSION}"
            )
        self._shards = {name: dict(meta) for name, meta in index["shards"].items()}
        self._keys = {key: (loc[0], int(loc[1])) for key, loc in index["keys"].items()}
        for name in self._shards:
            if not (self.directory / name).is_file():
                raise FeatureCacheError(f"{path} names shard {name}, which is missing")

    def _write_index(self) -> None:
        index = {
            "version": INDEX_VERSION,
            "shards": self._shards,
            "keys": {key: [name, row] for key, (name, row) in self._keys.items()},
        }
        atomic_write_bytes(
            self.directory / INDEX_FILE, json.dumps(index, separators=(",", ":")).encode("utf-8")
        )

    def _next_shard_name(self) -> str:
        numbers = [
            int(m.group(1)) for p in self.directory.iterdir() if (m := _SHARD_RE.match(p.name))
        ]
        return f"shard-{max(numbers, default=0) + 1:06d}.npy"

    def _shard(self, name: str) -> np.ndarray:
        if name not in self._loaded:
            matrix = np.load(self.directory / name, mmap_mode="r", allow_pickle=False)
            meta = self._shards[name]
            if matrix.shape != (meta["rows"], meta["dim"]):
                raise FeatureCacheError(
                    f"shard {name} has shape {matrix.shape}, index says "
                    f"({meta['rows']}, {meta['dim']})"
                )
            self._loaded[name] = matrix
        return self._loaded[name]

    # -- public API -----------------------------------------------------------------------
    @staticmethod
    def key(embedder_name: str, prompt: str, response: str) -> str:
        """The cache key of one (prompt, response) under one embedder."""
        return stable_id(embedder_name, prompt, response)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def num_shards(self) -> int:
        """Shard files the index currently references."""
        return len(self._shards)

    def get_or_compute(
        self, prompts: list[str], responses: list[str], embedder: Embedder
    ) -> np.ndarray:
        """(M, embedder.dim) float32 features, embedding only the pairs not cached yet.

        Why: every layer asks for features by text; this is the single place that decides what
        must be embedded (each distinct missing pair exactly once) and persists it.
        """
        if len(prompts) != len(responses):
            raise FeatureCacheError(
                f"got {len(prompts)} prompts but {len(responses)} responses: they must pair up"
            )
        keys = [self.key(embedder.name, p, r) for p, r in zip(prompts, responses, strict=True)]
        missing: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self._keys and k not in missing:
                missing[k] = i
        if missing:
            rows = list(missing.values())
            new = np.asarray(
                embedder.embed([prompts[i] for i in rows], [responses[i] for i in rows]),
                dtype=np.float32,
            )
            if new.shape != (len(rows), embedder.dim):
                raise FeatureCacheError(
                    f"embedder {embedder.name!r} returned shape {new.shape}, expected "
                    f"({len(rows)}, {embedder.dim})"
                )
            if not np.isfinite(new).all():
                raise FeatureCacheError(f"embedder {embedder.name!r} returned NaN/inf features")
            self._append(list(missing), new)
            self.rows_computed += len(rows)
        return self._gather(keys, embedder.dim)

    def _append(self, keys: list[str], matrix: np.ndarray) -> None:
        name = self._next_shard_name()
        _atomic_save_npy(self.directory / name, np.ascontiguousarray(matrix))
        self._shards[name] = {"rows": int(matrix.shape[0]), "dim": int(matrix.shape[1])}
        for row, key in enumerate(keys):
            self._keys[key] = (name, row)
        self._loaded[name] = matrix
        self._write_index()
        if len(self._shards) > self.max_shards:
            self.compact()

    def _gather(self, keys: list[str], dim: int) -> np.ndarray:
        out = np.empty((len(keys), dim), dtype=np.float32)
        by_shard: dict[str, tuple[list[int], list[int]]] = {}
        for i, k in enumerate(keys):
            name, row = self._keys[k]
            dest, src = by_shard.setdefault(name, ([], []))
            dest.append(i)
            src.append(row)
        for name, (dest, src) in by_shard.items():
            shard = self._shard(name)
            if shard.shape[1] != dim:
                raise FeatureCacheError(
                    f"cached features in {name} are {shard.shape[1]}-d, embedder says {dim}-d"
                )
            out[dest] = shard[np.asarray(src)]
        return out

    def compact(self) -> None:
        """Rewrite all shards of each width into one shard (fewer files, faster reopen)."""
        by_dim: dict[int, list[str]] = {}
        for name, meta in self._shards.items():
            by_dim.setdefault(int(meta["dim"]), []).append(name)
        old = dict(self._shards)
        for dim, names in by_dim.items():
            if len(names) < 2:
                continue
            keys = [k for k, (n, _) in self._keys.items() if n in set(names)]
            matrix = self._gather(keys, dim)
            new_name = self._next_shard_name()
            _atomic_save_npy(self.directory / new_name, matrix)
            for name in names:
                del self._shards[name]
                self._loaded.pop(name, None)
            self._shards[new_name] = {"rows": len(keys), "dim": dim}
            self._loaded[new_name] = matrix
            for row, k in enumerate(keys):
                self._keys[k] = (new_name, row)
        self._write_index()
        for name in set(old) - set(self._shards):
            (self.directory / name).unlink(missing_ok=True)
