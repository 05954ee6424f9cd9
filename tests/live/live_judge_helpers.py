"""Shared parts of the live-judge tests: deterministic fake replies, a manifest, a tiny LM reply.

The fake judge answers from a hash of the request's content, so a reply depends on what was
asked only (never on order or timing): the rubric judge gets a first-token distribution over
the digits (the most likely one is the reply text), the pairwise judge a letter with a reason.
The fake pool model answers with its name and the reversed prompt.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from fake_openai import FakeOpenAIServer, FakeReply, ReplyFunction, last_user_text


def digest(text: str) -> int:
    """A stable integer of a text."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def judge_reply(body: dict[str, Any], index: int) -> FakeReply:
    """A deterministic judge: a digit distribution for rubric requests, a letter for pairwise."""
    user = last_user_text(body)
    h = digest(user)
    if "<RESPONSE_A>" in user:
        letter = "ABC"[h % 3]
        top = {c: (-0.2 if c == letter else -2.0 - (h >> (4 * k)) % 3) for k, c in enumerate("ABC")}
        return FakeReply(f"{letter}\nreason {h % 97}", top_logprobs=(top,))
    top = {str(d): -((h >> (4 * d)) % 7) / 2.0 - 0.01 * d for d in range(1, 6)}
    best = max(top, key=lambda d: top[d])
    return FakeReply(best, top_logprobs=(top,))


def pool_reply(body: dict[str, Any], index: int) -> str:
    """A deterministic pool model: its name and the reversed prompt."""
    return f"{body['model']} answers {last_user_text(body)[::-1][:40]}"


@contextmanager
def live_servers(
    judge: ReplyFunction, **judge_options: Any
) -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    """A started pool server (:func:`pool_reply`) and judge server (``judge``)."""
    with FakeOpenAIServer(pool_reply) as pool, FakeOpenAIServer(judge, **judge_options) as jdg:
        yield pool, jdg


class CountingJudge:
    """A judge reply function that counts the replies it completes, per request content."""

    def __init__(self) -> None:
        self.completed: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any], index: int) -> FakeReply:
        reply = judge_reply(body, index)
        with self.lock:
            self.completed[str(body["messages"])] += 1
        return reply

    @property
    def total(self) -> int:
        return sum(self.completed.values())


PROMPTS = [
    "Name a colour of the sky.",
    "What is two plus two?",
    "Say hello politely.",
    "Give one word for happy.",
]


def write_prompts(path: Path, n: int = len(PROMPTS)) -> Path:
    """A prompts-only JSONL file (no responses, no scores)."""
    import json

    path.write_text(
        "".join(
            json.dumps({"prompt_id": f"p{i}", "prompt": text}) + "\n"
            for i, text in enumerate(PROMPTS[:n])
        )
    )
    return path


def live_manifest(
    tmp: Path,
    pool_url: str,
    judge_url: str,
    *,
    name: str = "live",
    models: int = 2,
    judge: dict[str, Any] | None = None,
    prompts: int = len(PROMPTS),
    **spec: Any,
) -> Path:
    """A prompts-only run: ``models`` fake endpoints answer, a live judge on ``judge_url``."""
    endpoint = judge_endpoint(
        judge_url, pricePerMillionInputTokens=2.0, pricePerMillionOutputTokens=8.0
    )
    body: dict[str, Any] = {
        "seed": 3,
        "batchSize": 2,
        "pairsPerPrompt": 1,
        "prompts": {"path": str(write_prompts(tmp / "prompts.jsonl", prompts))},
        "responses": {
            "source": "models",
            "temperature": 0,
            "maxNewTokens": 16,
            "models": [
                {
                    "name": f"m{k}",
                    "backend": "openai",
                    "endpoint": {
                        "baseUrl": pool_url,
                        "model": f"m{k}",
                        "pricePerMillionInputTokens": 1.0,
                        "pricePerMillionOutputTokens": 4.0,
                    },
                }
                for k in range(models)
            ],
        },
        "rewardModel": {
            "embedder": {"kind": "minilm", "maxLengthTokens": 32},
            "head": {"kind": "ensemble", "numHeads": 2, "hiddenDim": 8},
        },
        "trainer": {"maxStepsPerRound": 2, "batchSize": 4},
        "acquisition": {"method": "random"},
        "judge": judge or {"kind": "rubric", "llm": {"endpoint": endpoint}},
        "evaluation": {"heldoutFraction": 0},
        "output": {"dir": str(tmp / "run")},
        **spec,
    }
    manifest = {
        "apiVersion": "prefloop.dev/v1alpha1",
        "kind": "ActiveRun",
        "metadata": {"name": name},
        "spec": body,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def judge_endpoint(url: str, **extra: Any) -> dict[str, Any]:
    """The judge endpoint of :func:`live_manifest`, with changes."""
    return {
        "baseUrl": url,
        "model": "judge",
        "maxAttempts": 3,
        "backoffInitialSeconds": 0.01,
        "backoffMaxSeconds": 0.05,
        "timeoutSeconds": 5,
        **extra,
    }


def expected_rating(top: dict[str, float]) -> float:
    """ActiveUltraFeedback's expected rating of a first-token distribution (by hand)."""
    weights = {int(t.strip()): math.exp(lp) for t, lp in top.items() if t.strip() in "12345"}
    total = sum(weights.values())
    return sum(s * w for s, w in weights.items()) / total
