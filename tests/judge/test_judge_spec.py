"""spec.judge: the live kinds, what each needs, and the configuration hash of the verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from prefloop.spec import ActiveRun, JudgeSpec, SpecError, parse_activerun

ENDPOINT = {"baseUrl": "http://127.0.0.1:9/v1", "model": "judge"}


def judge(**kw: Any) -> JudgeSpec:
    return JudgeSpec.model_validate(kw)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"kind": "rubric"}, "kind: rubric needs `llm`"),
        ({"kind": "pairwise"}, "kind: pairwise needs `llm`"),
        ({"kind": "reward_model"}, "kind: reward_model needs `rewardModel`"),
        ({"kind": "oracle", "llm": {"endpoint": ENDPOINT}}, "`llm` is for kind: rubric"),
        ({"kind": "rubric", "llm": {}}, "backend: openai needs `endpoint`"),
        ({"kind": "rubric", "llm": {"backend": "transformers"}}, "needs `path`"),
        (
            {
                "kind": "rubric",
                "llm": {"backend": "transformers", "path": "m", "endpoint": ENDPOINT},
            },
            "`endpoint` is for backend: openai",
        ),
        (
            {"kind": "pairwise", "mode": "bradley_terry", "llm": {"endpoint": ENDPOINT}},
            "kind: pairwise decides by the two orders",
        ),
        ({"kind": "oracle", "aspects": ["honesty"]}, "`aspects` is for kind: rubric"),
        (
            {"kind": "rubric", "aspects": ["honesty", "honesty"], "llm": {"endpoint": ENDPOINT}},
            "aspects must be distinct",
        ),
    ],
)
def test_each_kind_gets_what_it_needs(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        judge(**spec)


def test_config_hash_ignores_where_and_how_hard_the_judge_runs() -> None:
    base = judge(kind="rubric", llm={"endpoint": ENDPOINT})
    moved = judge(
        kind="rubric",
        llm={
            "endpoint": {
                **ENDPOINT,
                "baseUrl": "https://other:8000/v1",
                "apiKeyEnv": "KEY",
                "maxConcurrency": 3,
                "timeoutSeconds": 5,
                "pricePerMillionInputTokens": 2.5,
            }
        },
    )
    assert base.config_hash(0) == moved.config_hash(0)
    other_model = judge(kind="rubric", llm={"endpoint": {**ENDPOINT, "model": "other"}})
    sampled = judge(kind="rubric", llm={"endpoint": ENDPOINT, "temperature": 0.7})
    fewer = judge(kind="rubric", aspects=["honesty"], llm={"endpoint": ENDPOINT})
    hashes = {
        base.config_hash(0),
        base.config_hash(1),
        other_model.config_hash(0),
        sampled.config_hash(0),
        fewer.config_hash(0),
        judge(kind="pairwise", llm={"endpoint": ENDPOINT}).config_hash(0),
    }
    assert len(hashes) == 6


def _run(judge_spec: dict[str, Any]) -> ActiveRun:
    return parse_activerun(
        {
            "apiVersion": "prefloop.dev/v1alpha1",
            "kind": "ActiveRun",
            "metadata": {"name": "live"},
            "spec": {
                "responses": {
                    "source": "models",
                    "models": [
                        {"name": "a", "backend": "openai", "endpoint": ENDPOINT},
                        {"name": "b", "backend": "openai", "endpoint": ENDPOINT},
                    ],
                },
                "judge": judge_spec,
            },
        }
    )


def test_generated_responses_need_a_live_judge() -> None:
    run = _run({"kind": "rubric", "llm": {"endpoint": ENDPOINT}})
    assert run.spec.judge.kind == "rubric" and run.spec.judge.llm is not None
    assert run.spec.judge.llm.temperature == 0.0 and run.spec.judge.llm.top_logprobs == 20
    with pytest.raises(SpecError, match=r"judge\.kind: oracle reveals stored judge scores"):
        _run({"kind": "oracle"})
