"""The reward-model judge: a tiny sequence-classification model built here scores each response
(its logit, by hand), the higher wins, each response is scored once per cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaForSequenceClassification

from _tiny_llama import tiny_config, tiny_tokenizer
from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import JudgeRequest
from prefloop.judge.cache import JudgementCache
from prefloop.judge.reward_model import RewardModelJudge

TEXTS = ["what is the capital of france", "paris is the capital", "i do not know", "london"]


def save_reward_model(path: Path, num_labels: int = 1) -> Path:
    tokenizer = tiny_tokenizer(TEXTS * 4)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_config(tokenizer, num_labels=num_labels))
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def logit_by_hand(path: Path, prompt: str, response: str) -> float:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = LlamaForSequenceClassification.from_pretrained(str(path)).eval()
    conv = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    text = tokenizer.apply_chat_template(conv, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        return float(model(**ids).logits[0, 0])


def test_scores_are_the_models_logits_and_each_response_is_scored_once(tmp_path: Path) -> None:
    path = save_reward_model(tmp_path / "rm")
    a, b, c = Response("x", "paris is the capital"), Response("y", "london"), Response("z", "no")
    item = PromptItem("p", "what is the capital of france", (a, b, c))
    requests = [JudgeRequest("ab", item, a, b), JudgeRequest("ac", item, a, c)]
    judge = RewardModelJudge(path=str(path), config_key="k", cache=JudgementCache(tmp_path / "c"))
    ab, ac = judge.judge(requests)
    assert ab.score_a == pytest.approx(logit_by_hand(path, item.prompt_text(), a.text), abs=1e-5)
    assert ab.score_b == pytest.approx(logit_by_hand(path, item.prompt_text(), b.text), abs=1e-5)
    assert ac.score_a == ab.score_a  # a scored once, shared
    assert ab.winner == (0 if ab.score_a > ab.score_b else 1)  # type: ignore[operator]
    assert ab.probability_a in (0.0, 1.0) and not ab.failed
    assert ab.usage.calls + ac.usage.calls == 3 and ac.usage.cache_hits == 1
    assert "reward model" in (ab.rationale or "") and "x " in (ab.rationale or "")
    again = RewardModelJudge(path=str(path), config_key="k", cache=JudgementCache(tmp_path / "c"))
    repeated = again.judge(requests)
    assert [j.score_b for j in repeated] == [ab.score_b, ac.score_b]
    assert sum(j.usage.calls for j in repeated) == 0 and again._model is None  # never loaded


def test_a_model_with_more_than_one_label_is_refused(tmp_path: Path) -> None:
    path = save_reward_model(tmp_path / "rm2", num_labels=2)
    a, b = Response("x", "paris"), Response("y", "london")
    judge = RewardModelJudge(path=str(path), config_key="k")
    with pytest.raises(ValueError, match="has 2 labels; a reward model has one output"):
        judge.judge([JudgeRequest("ab", PromptItem("p", "q", (a, b)), a, b)])
