"""Rubric and pairwise judges on a tiny causal LM: through the HTTP backend (the LM behind the
fake OpenAI-compatible server) and the transformers backend, with the same ratings."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fake_openai import FakeOpenAIServer, FakeReply

from _tiny_llama import save_tiny_causal_lm
from prefloop.data.records import PromptItem, Response
from prefloop.generation.base import Sampling
from prefloop.generation.transformers_backend import LoadedCausalLM, render_chat
from prefloop.judge.base import JudgeRequest
from prefloop.judge.cache import JudgementCache
from prefloop.judge.llm_backends import JudgeSampling, OpenAIJudgeLLM, TransformersJudgeLLM
from prefloop.judge.pairwise import PairwiseJudge
from prefloop.judge.rubric import RATING_LABELS, RubricJudge
from prefloop.judge.rubric_prompts import rubric_messages
from prefloop.llm import HttpEndpointConfig

CORPUS = ["1 2 3 4 5", "A B C", "the sky is blue", "two plus two is four", "hello there"]


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield save_tiny_causal_lm(tmp_path_factory.mktemp("judge-lm"), CORPUS * 4, seed=0)
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def lm(lm_path: Path) -> LoadedCausalLM:
    return LoadedCausalLM.load("judge", str(lm_path))


def first_logprobs(lm: LoadedCausalLM, messages: list[dict[str, str]]) -> torch.Tensor:
    """The LM's log-softmax at the first generated position (computed here, independently)."""
    text, add_special = render_chat(messages, lm.tokenizer)
    ids = lm.tokenizer(text, add_special_tokens=add_special, return_tensors="pt")
    with torch.inference_mode():
        return torch.log_softmax(lm.model(**ids).logits[0, -1].float(), -1)


def lm_reply(lm: LoadedCausalLM) -> Any:
    """The fake server's reply function: the tiny LM's greedy text and first-token top-k."""

    def reply(body: dict[str, Any], index: int) -> FakeReply:
        logprobs = first_logprobs(lm, body["messages"])
        top = torch.topk(logprobs, int(body.get("top_logprobs") or 1))
        first: dict[str, float] = {}
        for value, token in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            first.setdefault(lm.tokenizer.decode([token]), value)
        text, add_special = render_chat(body["messages"], lm.tokenizer)
        ((answer, _, _),) = lm.generate(
            [text], add_special, [0], Sampling(max_new_tokens=4, temperature=0.0)
        )
        return FakeReply(answer or "?", top_logprobs=(first,))

    return reply


def pair(prompt: str = "What is two plus two?") -> tuple[PromptItem, Response, Response]:
    a, b = Response("m-a", "two plus two is four"), Response("m-b", "hello there sky")
    return PromptItem("p", prompt, (a, b)), a, b


def test_rubric_ratings_are_expected_ratings_and_agree_across_backends(
    lm: LoadedCausalLM, lm_path: Path
) -> None:
    vocab = len(lm.tokenizer)
    sampling = JudgeSampling(max_tokens=4, top_logprobs=vocab)
    item, a, b = pair()
    request = JudgeRequest("pair-1", item, a, b)
    with FakeOpenAIServer(lm_reply(lm)) as server:
        http = OpenAIJudgeLLM(HttpEndpointConfig(base_url=server.base_url), sampling)
        (via_http,) = RubricJudge(llm=http, config_key="k").judge([request])
        assert server.request_count == 8  # 2 responses x 4 aspects, one request each
    local = TransformersJudgeLLM(str(lm_path), sampling, batch_size=3)
    (via_local,) = RubricJudge(llm=local, config_key="k").judge([request])
    assert not via_http.failed and not via_local.failed
    assert via_http.aspects.keys() == via_local.aspects.keys()
    for key, value in via_http.aspects.items():
        assert value == pytest.approx(via_local.aspects[key], abs=1e-4), key
    # by hand: the expected rating over the five digits of the LM's own first-token logits,
    # every token that reads as a digit ("4", " 4") counting for it
    logprobs = first_logprobs(lm, list(rubric_messages("honesty", item.prompt_text(), b.text)))
    mass = [0.0] * 5
    for token in range(len(lm.tokenizer)):
        text = lm.tokenizer.decode([token]).strip()
        if text in RATING_LABELS:
            mass[int(text) - 1] += math.exp(float(logprobs[token]))
    assert sum(1 for t in range(len(lm.tokenizer)) if lm.tokenizer.decode([t]).strip() == "4") > 1
    want = sum((s + 1) * m for s, m in enumerate(mass)) / sum(mass)
    assert via_local.aspects["b.honesty"] == pytest.approx(want, abs=1e-5)
    overall_a = sum(v for k, v in via_local.aspects.items() if k.startswith("a.")) / 4
    assert via_local.score_a == pytest.approx(overall_a)
    assert 1.0 <= via_local.score_b <= 5.0  # type: ignore[operator]
    assert via_local.winner == (0 if via_local.score_a > via_local.score_b else 1)  # type: ignore[operator]
    assert "m-a: instruction_following" in (via_local.rationale or "")
    assert via_http.usage.calls == 8 and via_http.usage.prompt_tokens > 0
    assert via_local.usage.calls == 8 and via_local.usage.cost == 0.0


def test_pairwise_asks_both_orders_once_and_averages_them(lm: LoadedCausalLM) -> None:
    vocab = len(lm.tokenizer)
    item, a, b = pair()
    sampling = JudgeSampling(max_tokens=4, top_logprobs=vocab)
    with FakeOpenAIServer(lm_reply(lm)) as server:
        llm = OpenAIJudgeLLM(HttpEndpointConfig(base_url=server.base_url), sampling)
        judge = PairwiseJudge(llm=llm, config_key="k")
        (ab,) = judge.judge([JudgeRequest("x", item, a, b)])
        (ba,) = judge.judge([JudgeRequest("x", item, b, a)])  # the same pair, other order
        assert server.request_count == 2
        shown = [server.requests[k]["messages"][1]["content"] for k in range(2)]
    assert shown[0].index(a.text) < shown[0].index(b.text)
    assert shown[1].index(b.text) < shown[1].index(a.text)
    assert ba.usage.calls == 0 and ba.usage.cache_hits == 2
    assert ab.probability_a == pytest.approx(1.0 - ba.probability_a)
    read = ab.aspects
    want = ((read["ab.a"] + read["ab.tie"] / 2) + (read["ba.a"] + read["ba.tie"] / 2)) / 2
    assert ab.probability_a == pytest.approx(want)
    assert math.isclose(read["ab.a"] + read["ab.b"] + read["ab.tie"], 1.0)
    by_order = [max(("a", "b", "tie"), key=lambda w: read[f"{o}.{w}"]) for o in ("ab", "ba")]
    assert ab.tie == (by_order[0] != by_order[1] or by_order[0] == "tie")
    assert ab.tie or ab.winner == (0 if by_order[0] == "a" else 1)
    assert "m-a shown first" in (ab.rationale or "")


def test_a_shared_response_is_rated_once_and_the_cache_outlives_the_judge(
    lm: LoadedCausalLM, tmp_path: Path
) -> None:
    sampling = JudgeSampling(max_tokens=2, top_logprobs=len(lm.tokenizer))
    a, b, c = (Response(m, t) for m, t in [("x", "one"), ("y", "two"), ("z", "three")])
    item = PromptItem("p", "count", (a, b, c))
    requests = [JudgeRequest("ab", item, a, b), JudgeRequest("ac", item, a, c)]
    with FakeOpenAIServer(lm_reply(lm)) as server:
        llm = OpenAIJudgeLLM(HttpEndpointConfig(base_url=server.base_url), sampling)
        first = RubricJudge(llm=llm, config_key="k", cache=JudgementCache(tmp_path)).judge(requests)
        assert server.request_count == 12  # three responses x four aspects
        assert first[0].usage.calls == 8 and first[1].usage.calls == 4
        assert first[1].usage.cache_hits == 4  # a's ratings, paid for by the first pair
        again = RubricJudge(llm=llm, config_key="k", cache=JudgementCache(tmp_path)).judge(requests)
        assert server.request_count == 12  # a new judge on the same directory pays nothing
        other = RubricJudge(llm=llm, config_key="k2", cache=JudgementCache(tmp_path)).judge(
            requests[:1]
        )
        assert server.request_count == 20  # another configuration does not reuse answers
    assert [j.aspects for j in again] == [j.aspects for j in first]
    assert other[0].aspects == first[0].aspects  # same model, same answers
    assert all(j.usage.calls == 0 for j in again)
