"""Build the run's judge from ``spec.judge``: backends, cache, decision rule and config key.

One function serves the embedded engine (cache in ``<run>/judge-cache``) and the judge service
(cache in its state directory), so both judge with exactly the same configuration.

The judge's configuration key (:func:`judge_config_key`) names everything that shapes a verdict:
the spec's judge fields except where and how hard it runs (:meth:`JudgeSpec.config_hash`), the
judge seed, and the versions of the prompt texts (a changed rubric must not reuse the answers to
the old one). It keys the judgement cache and the judge service's verdict log.
"""

from __future__ import annotations

from pathlib import Path

from prefloop.data.records import stable_id
from prefloop.judge.base import Judge
from prefloop.judge.cache import JudgementCache
from prefloop.judge.decision import ScoreDecision
from prefloop.judge.llm_backends import (
    JudgeLLM,
    JudgeSampling,
    OpenAIJudgeLLM,
    TransformersJudgeLLM,
)
from prefloop.judge.pairwise import PAIRWISE_SYSTEM_PROMPT, PAIRWISE_USER_TEMPLATE
from prefloop.judge.registry import make_judge
from prefloop.judge.rubric_prompts import RUBRIC_SHA256
from prefloop.spec import JudgeLlmSpec, JudgeSpec, resolve_path

PROMPTS_VERSION = stable_id(
    *sorted(RUBRIC_SHA256.values()), PAIRWISE_SYSTEM_PROMPT, PAIRWISE_USER_TEMPLATE
)
"""Changes whenever a judge prompt text changes."""


def judge_config_key(spec: JudgeSpec, seed: int) -> str:
    """The key of a judge's cached answers and recorded verdicts (see module doc)."""
    if spec.kind == "oracle":
        return spec.config_hash(seed)
    return stable_id("judge-config", spec.config_hash(seed), PROMPTS_VERSION)


def judge_llm(llm: JudgeLlmSpec, manifest_dir: Path | None) -> JudgeLLM:
    """The judge LLM of ``llm``: an OpenAI-compatible endpoint or a local model."""
    sampling = JudgeSampling(
        temperature=llm.temperature,
        top_p=llm.top_p,
        max_tokens=llm.max_tokens,
        top_logprobs=llm.top_logprobs,
    )
    if llm.backend == "openai":
        assert llm.endpoint is not None  # the spec requires it
        return OpenAIJudgeLLM(llm.endpoint, sampling)
    assert llm.path is not None  # the spec requires it
    return TransformersJudgeLLM(
        str(resolve_path(llm.path, manifest_dir)),
        sampling,
        device=llm.device,
        batch_size=llm.batch_size,
    )


def build_judge_from_spec(
    spec: JudgeSpec, *, seed: int, manifest_dir: Path | None, cache_dir: Path | None
) -> Judge:
    """The judge ``spec`` describes, seeded with ``seed``, caching in ``cache_dir``.

    Why ``cache_dir`` is a parameter: the embedded run keeps answers in its run directory, the
    judge service in its state directory; None keeps them in memory (tests, one-off use).
    """
    if spec.kind == "oracle":
        return make_judge(
            "oracle",
            seed=seed,
            mode=spec.mode,
            tie_policy=spec.tie_policy,
            temperature=spec.temperature,
            score_transform=spec.score_transform,
            tie_margin=spec.tie_margin,
        )
    config_key = judge_config_key(spec, seed)
    cache = JudgementCache(cache_dir)
    decision = ScoreDecision(
        mode=spec.mode,
        tie_policy=spec.tie_policy,
        temperature=spec.temperature,
        score_transform="identity",
        tie_margin=spec.tie_margin,
        seed=seed,
    )
    common = {"config_key": config_key, "decision": decision, "cache": cache}
    if spec.kind == "reward_model":
        rm = spec.reward_model
        assert rm is not None  # the spec requires it
        return make_judge(
            "reward_model",
            seed=seed,
            path=str(resolve_path(rm.path, manifest_dir)),
            device=rm.device,
            batch_size=rm.batch_size,
            max_length_tokens=rm.max_length_tokens,
            **common,
        )
    assert spec.llm is not None  # the spec requires it
    llm = judge_llm(spec.llm, manifest_dir)
    if spec.kind == "rubric":
        return make_judge("rubric", seed=seed, llm=llm, aspects=tuple(spec.aspects), **common)
    return make_judge("pairwise", seed=seed, llm=llm, **common)
