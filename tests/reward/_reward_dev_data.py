"""Real AlpacaEval dev data for the reward tests: prompts, 8 responses each, judge scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEV_DATA = Path(__file__).resolve().parents[2] / "data" / "alpacaeval" / "dev.jsonl"
DEV_PROMPTS = 120
DEV_RESPONSE_STRIDE = 2  # every 2nd of the 16 responses (sorted by model name): 8 per prompt


@dataclass(frozen=True)
class DevFeatures:
    features: np.ndarray  # (P, N, 384)
    scores: np.ndarray  # (P, N)
    prompt_ids: list[str]


@dataclass(frozen=True)
class DevTexts:
    prompts: list[str]  # flat, P * N
    responses: list[str]  # flat, P * N
    scores: np.ndarray  # (P, N)
    prompt_ids: list[str]


def read_dev_texts() -> DevTexts:
    """The first ``DEV_PROMPTS`` rows of dev.jsonl, every ``DEV_RESPONSE_STRIDE``-th response."""
    rows = []
    with DEV_DATA.open(encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) == DEV_PROMPTS:
                break
    prompts, responses, scores = [], [], []
    for row in rows:
        picked = row["responses"][::DEV_RESPONSE_STRIDE]
        for resp in picked:
            prompts.append(row["prompt"])
            responses.append(resp["text"])
        scores.append([float(resp["score"]) for resp in picked])
    return DevTexts(prompts, responses, np.asarray(scores), [row["prompt_id"] for row in rows])
