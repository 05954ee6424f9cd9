"""Embedded implementations of the five roles: plain objects in one process.

``LocalRewardModel`` owns the embedder, the feature cache, the head and the trainer; the reward
role reads from it and the trainer role writes to it, exactly as the reward and trainer services
share a checkpoint version through the bus in service mode.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prefloop.acquisition import AcquisitionInput, Selection, select
from prefloop.data.records import PreferencePair, PromptItem, ScoredBatch
from prefloop.engine.roles import RewardScores, TrainResult
from prefloop.generation.base import ResponseGenerator
from prefloop.judge.base import Judge, Judgement, JudgeRequest
from prefloop.reward.base import Embedder, RewardHead
from prefloop.reward.evaluation import pairwise_accuracy
from prefloop.reward.feature_cache import FeatureCache
from prefloop.reward.threads import single_threaded
from prefloop.trainer.reward_trainer import RewardModelTrainer


class LocalGeneration:
    """Generation role over a local ``ResponseGenerator`` (precomputed or transformers)."""

    def __init__(self, generator: ResponseGenerator) -> None:
        self.generator = generator

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        return self.generator.generate(items, seed=seed)


class LocalRewardModel:
    """Embedder + feature cache + uncertainty head + trainer, shared by two roles."""

    def __init__(
        self,
        embedder: Embedder,
        cache: FeatureCache,
        head: RewardHead,
        trainer: RewardModelTrainer,
    ) -> None:
        self.embedder = embedder
        self.cache = cache
        self.head = head
        self.trainer = trainer
        self.version = 0

    # -- features ---------------------------------------------------------------------------
    def features(self, items: list[PromptItem], mask: np.ndarray) -> np.ndarray:
        """(P, N, D) features of every response (zeros in padded slots), embedded once."""
        prompts: list[str] = []
        responses: list[str] = []
        for it in items:
            text = it.prompt_text()
            for r in it.responses:
                prompts.append(text)
                responses.append(r.text)
        flat = self.cache.get_or_compute(prompts, responses, self.embedder)
        out = np.zeros((*mask.shape, flat.shape[1]), dtype=np.float32)
        out[mask] = flat
        return out

    def pair_features(self, pairs: list[PreferencePair]) -> tuple[np.ndarray, np.ndarray]:
        """Chosen and rejected features of labelled pairs (from the cache)."""
        prompts = []
        for p in pairs:
            prompts.append(PromptItem(p.prompt_id, p.prompt).prompt_text())
        chosen = self.cache.get_or_compute(prompts, [p.chosen.text for p in pairs], self.embedder)
        rejected = self.cache.get_or_compute(
            prompts, [p.rejected.text for p in pairs], self.embedder
        )
        return chosen, rejected


class LocalReward:
    """Reward role: features, then the head's mean, std and samples per response."""

    def __init__(self, model: LocalRewardModel) -> None:
        self.model = model

    def score(self, items: list[PromptItem], mask: np.ndarray) -> RewardScores:
        t0 = time.perf_counter()
        feats = self.model.features(items, mask)
        t1 = time.perf_counter()
        with single_threaded():
            pred = self.model.head.predict(feats[mask])
        t2 = time.perf_counter()
        p, n = mask.shape

        def pad(x: np.ndarray | None) -> np.ndarray | None:
            if x is None:
                return None
            out = np.zeros((p, n, *x.shape[1:]), dtype=np.float64)
            out[mask] = x
            return out

        mean = pad(pred.mean)
        std = pad(pred.std)
        samples = pad(pred.samples)
        assert mean is not None and std is not None and samples is not None
        return RewardScores(
            mean=mean,
            std=std,
            samples=samples,
            features=feats,
            pref_mean=pad(pred.pref_mean),
            pref_var=pad(pred.pref_var),
            model_version=self.model.version,
            timings={"embed_seconds": t1 - t0, "head_seconds": t2 - t1},
        )

    def evaluate(self, items: list[PromptItem]) -> dict[str, float]:
        if not items:
            return {}
        batch = ScoredBatch.from_items(items)
        feats = self.model.features(list(items), batch.mask)
        with single_threaded():
            return pairwise_accuracy(self.model.head, feats, batch.judge_scores, batch.mask)


class LocalAcquisition:
    """Acquisition role: the registry, with a generator seeded per round."""

    def select(
        self, inputs: AcquisitionInput, *, method: str, params: dict[str, Any], seed: int
    ) -> Selection:
        return select(method, inputs, np.random.default_rng(seed), **params)


class LocalJudge:
    """Judge role over a local ``Judge``."""

    def __init__(self, judge: Judge) -> None:
        self.inner = judge
        self.name = judge.name
        self.calls = 0

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        self.calls += len(requests)
        return self.inner.judge(requests)


class LocalTrainer:
    """Trainer role: replay buffer + head training; bumps the model version each round."""

    def __init__(self, model: LocalRewardModel) -> None:
        self.model = model

    def train(
        self,
        pairs: list[PreferencePair],
        *,
        round_index: int,
        n_done: int,
        n_total: int,
        seed: int,
    ) -> TrainResult:
        t0 = time.perf_counter()
        chosen, rejected = self.model.pair_features(pairs)
        t1 = time.perf_counter()
        with single_threaded():
            metrics = self.model.trainer.train_round(
                chosen,
                rejected,
                [p.pair_id for p in pairs],
                n_done=n_done,
                n_total=n_total,
                seed=seed,
            )
        self.model.version += 1
        out = {k: float(v) for k, v in metrics.items()}
        out["train_embed_seconds"] = t1 - t0
        return TrainResult(self.model.version, out)

    def save_state(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"trainer": self.model.trainer.state_dict(), "version": self.model.version},
            directory / "reward_model.pt",
        )

    def load_state(self, directory: Path) -> None:
        blob = torch.load(directory / "reward_model.pt", weights_only=False)
        self.model.trainer.load_state_dict(blob["trainer"])
        self.model.version = int(blob["version"])
