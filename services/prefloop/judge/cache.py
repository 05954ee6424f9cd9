"""The judgement cache: every paid judge request's answer, kept so it is never paid for twice.

A live judge's unit of cost is one model request: one (aspect, prompt, response) for the rubric
judge, one (prompt, ordered pair) for the pairwise judge, one (prompt, response) for the reward
model. Its answer is stored under a key made of the judge's configuration key (the model, its
decoding settings, the prompts, the seed: whatever changes the answer) and the request's content,
so the same request is answered from the cache in later rounds, after ``--resume``, after a crash,
and by a restarted judge service; a change of judge configuration makes new keys instead of
reusing answers of another judge. Failed requests are not stored: they are asked again.

On disk, in one directory (``<run>/judge-cache/`` embedded, ``<state-dir>/judge-cache-<run>/``
for the judge service): ``shard-NNNNNN.jsonl`` files of ``{"key": ..., "value": ...}`` lines,
each written whole with :func:`~prefloop.data.atomic.atomic_write_text` (beside, fsync, rename,
directory fsync) and never modified. A judge writes one shard per chunk of requests, so a kill
loses at most the chunk in flight. When shards pile up past ``max_shards`` they are merged into
one new shard (written atomically before the old ones are removed; a crash in between leaves
duplicates, which are harmless). One process writes a cache directory at a time (the judge
service holds its state directory's lock; an embedded run owns its run directory).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prefloop.data.atomic import atomic_write_text
from prefloop.data.records import stable_id
from prefloop.judge.decision import ScoreDecision

_SHARD = re.compile(r"^shard-(\d{6})\.jsonl$")


class JudgementCacheError(RuntimeError):
    """A cache shard cannot be read."""


def cache_key(config_key: str, *parts: object) -> str:
    """The key of one judge request: the judge configuration plus the request's content."""
    return stable_id("judgement", config_key, *parts, length=32)


class JudgementCache:
    """Answers of judge requests by key, persisted in ``directory`` (memory only when None).

    Args:
        directory: the cache directory (created if missing), or None for a cache that lives as
            long as the judge.
        max_shards: merge the shards into one when there are more.
    """

    def __init__(self, directory: Path | None, max_shards: int = 64) -> None:
        self.directory = directory
        self.max_shards = max_shards
        self._values: dict[str, Any] = {}
        self._shards: list[int] = []
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load(directory)

    def _load(self, directory: Path) -> None:
        for path in sorted(directory.iterdir()):
            match = _SHARD.match(path.name)
            if match is None:
                continue
            self._shards.append(int(match.group(1)))
            try:
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        record = json.loads(line)
                        self._values[record["key"]] = record["value"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise JudgementCacheError(
                    f"judgement cache shard {path} is unreadable ({exc}); it was written "
                    "atomically, so it was changed by something else: remove it to pay for "
                    "its judgements again"
                ) from exc

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str) -> Any | None:
        """The stored answer, or None."""
        return self._values.get(key)

    def put_many(self, entries: dict[str, Any]) -> None:
        """Store new answers: in memory, then as one new shard (atomic) when on disk.

        Why a shard per call: a judge calls this after each chunk of requests, and a crash may
        then lose only the chunk in flight, never an answer already stored.
        """
        if not entries:
            return
        self._values.update(entries)
        if self.directory is None:
            return
        self._write_shard(entries)
        if len(self._shards) > self.max_shards:
            self._compact()

    def _write_shard(self, entries: dict[str, Any]) -> None:
        assert self.directory is not None
        number = (max(self._shards) + 1) if self._shards else 0
        text = "".join(
            json.dumps({"key": k, "value": v}, sort_keys=True, allow_nan=False) + "\n"
            for k, v in entries.items()
        )
        atomic_write_text(self.directory / f"shard-{number:06d}.jsonl", text)
        self._shards.append(number)

    def _compact(self) -> None:
        assert self.directory is not None
        old = list(self._shards)
        self._write_shard(dict(self._values))
        for number in old:
            (self.directory / f"shard-{number:06d}.jsonl").unlink(missing_ok=True)
        self._shards = self._shards[-1:]


class CachingJudge:
    """What every live judge holds: its configuration key, seed, decision rule, cache and name.

    Why a base: the rubric, pairwise and reward-model judges key their answers the same way and
    default the same way (a decision rule seeded with the judge seed, a memory-only cache).
    """

    def __init__(
        self,
        *,
        config_key: str,
        seed: int,
        decision: ScoreDecision | None,
        cache: JudgementCache | None,
        name: str,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.config_key = config_key
        self.seed = seed
        self.decision = decision or ScoreDecision(seed=seed)
        self.cache = cache if cache is not None else JudgementCache(None)
        self.name = name
