"""The reward-model judge: a local sequence-classification model scores each response.

ActiveUltraFeedback offers a reward-model oracle next to the LLM judge
(``activeuf/oracle/reward_model_annotations.py``, with Skywork-Reward-V2-Llama-3.1-8B): each
(prompt, response) conversation is rendered with the model's chat template, and the response's
score is the raw logit of the model's single output. This judge does the same with any local
Hugging Face ``AutoModelForSequenceClassification`` with one label (nothing is downloaded), then
decides the pair with the shared rule (:class:`~prefloop.judge.decision.ScoreDecision`: the
higher score wins, or a seeded Bradley-Terry draw on the score difference).

Without a chat template the prompt and response are encoded as a text pair. A conversation
longer than ``max_length_tokens`` is cut at its end. Scores are cached per (judge configuration,
prompt, response), so every response is scored once per run directory.
"""

from __future__ import annotations

import time
from typing import Any

from prefloop.judge.base import NO_USAGE, Judgement, JudgeRequest, JudgeUsage, failed_judgement
from prefloop.judge.cache import CachingJudge, JudgementCache, cache_key
from prefloop.judge.decision import ScoreDecision


class RewardModelJudge(CachingJudge):
    """A :class:`~prefloop.judge.base.Judge` backed by a local reward model.

    Args:
        path: local model directory (sequence classification, one label).
        config_key: fingerprint of the judge configuration (keys the cache).
        seed: the run's judge seed (tie coin, Bradley-Terry draws).
        device: torch device.
        batch_size: conversations per forward pass.
        max_length_tokens: truncation length of a conversation.
        decision: how two scores become a label.
        cache: where scores are kept (default: in memory only).
        name: recorded as the ``judge`` of every pair.
    """

    def __init__(
        self,
        *,
        path: str,
        config_key: str,
        seed: int = 0,
        device: str = "cpu",
        batch_size: int = 8,
        max_length_tokens: int = 1024,
        decision: ScoreDecision | None = None,
        cache: JudgementCache | None = None,
        name: str = "reward-model",
    ) -> None:
        self.path = path
        super().__init__(
            config_key=config_key, seed=seed, decision=decision, cache=cache, name=name
        )
        self.device = device
        self.batch_size = batch_size
        self.max_length_tokens = max_length_tokens
        self._model: Any = None
        self._tokenizer: Any = None

    def __repr__(self) -> str:
        return f"RewardModelJudge(path={self.path!r}, device={self.device!r}, name={self.name!r})"

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                model = AutoModelForSequenceClassification.from_pretrained(
                    self.path, local_files_only=True
                )
            except (OSError, ValueError) as exc:
                raise ValueError(
                    f"judge.rewardModel.path: cannot load a sequence-classification model from "
                    f"{self.path!r} (local files only, nothing is downloaded): {exc}"
                ) from exc
            if model.config.num_labels != 1:
                raise ValueError(
                    f"judge.rewardModel.path: {self.path!r} has {model.config.num_labels} labels; "
                    "a reward model has one output (the score)"
                )
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            if model.config.pad_token_id is None:
                model.config.pad_token_id = tokenizer.pad_token_id
            model.to(self.device)
            model.eval()
            self._model, self._tokenizer = model, tokenizer
        return self._model, self._tokenizer

    def _encode(self, tokenizer: Any, prompt: str, response: str) -> dict[str, Any]:
        if getattr(tokenizer, "chat_template", None):
            conv = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            text = tokenizer.apply_chat_template(conv, tokenize=False)
            return dict(
                tokenizer(
                    text,
                    add_special_tokens=False,
                    truncation=True,
                    max_length=self.max_length_tokens,
                )
            )
        return dict(tokenizer(prompt, response, truncation=True, max_length=self.max_length_tokens))

    def _score(self, todo: dict[str, tuple[str, str]]) -> tuple[dict[str, float], JudgeUsage]:
        import torch

        model, tokenizer = self._load()
        scores: dict[str, float] = {}
        usage = JudgeUsage()
        items = list(todo.items())
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            t0 = time.perf_counter()
            encoded = [self._encode(tokenizer, p, r) for _, (p, r) in chunk]
            batch = tokenizer.pad(encoded, return_tensors="pt")
            with torch.inference_mode():
                logits = model(**{k: v.to(self.device) for k, v in batch.items()}).logits
            values = logits[:, 0].tolist()
            fresh = {key: float(v) for (key, _), v in zip(chunk, values, strict=True)}
            self.cache.put_many(fresh)
            scores.update(fresh)
            tokens = sum(len(e["input_ids"]) for e in encoded)
            usage += JudgeUsage(
                calls=len(chunk), prompt_tokens=tokens, seconds=time.perf_counter() - t0
            )
        return scores, usage

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        """One judgement per request, in order (scores cached per response)."""
        keys: list[tuple[str, str]] = []
        todo: dict[str, tuple[str, str]] = {}
        hits: dict[int, int] = {}
        first_owner: dict[str, int] = {}
        for owner, request in enumerate(requests):
            prompt = request.item.prompt_text()
            pair_keys = []
            for response in (request.a, request.b):
                key = cache_key(self.config_key, "reward_model", prompt, response.text)
                pair_keys.append(key)
                if key in self.cache or key in todo:
                    hits[owner] = hits.get(owner, 0) + 1
                else:
                    todo[key] = (prompt, response.text)
                    first_owner[key] = owner
            keys.append((pair_keys[0], pair_keys[1]))
        fresh, cost = self._score(todo) if todo else ({}, NO_USAGE)
        payers = sorted({first_owner[k] for k in todo})
        out = []
        for owner, request in enumerate(requests):
            usage = JudgeUsage(cache_hits=hits.get(owner, 0))
            if payers and owner == payers[0]:
                usage += cost  # one forward pass served the batch: charged to its first pair
            key_a, key_b = keys[owner]
            score_a = fresh.get(key_a, self.cache.get(key_a))
            score_b = fresh.get(key_b, self.cache.get(key_b))
            if score_a is None or score_b is None:
                out.append(failed_judgement(request.pair_id, "no reward-model score", usage))
                continue
            winner, probability_a, tie = self.decision.decide(request, score_a, score_b)
            out.append(
                Judgement(
                    pair_id=request.pair_id,
                    winner=winner,
                    probability_a=probability_a,
                    score_a=score_a,
                    score_b=score_b,
                    tie=tie,
                    rationale=(
                        f"reward model {self.path}: {request.a.model} {score_a:.3f}, "
                        f"{request.b.model} {score_b:.3f}"
                    ),
                    usage=usage,
                )
            )
        return out
