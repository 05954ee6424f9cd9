"""The core records <-> prefloop.v1 messages, both ways, with input checks on the way in.

Why one module: every servicer and every client converts the same records, and a conversion
that loses a detail (a ``None`` score, a chat prompt flattened to text, a NaN acquisition value)
would make service mode drift from embedded mode. Decoding raises :class:`RequestError` (a
``ValueError``) naming the field at fault; the server maps it to INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from prefloop.acquisition.base import Selection
from prefloop.bus.payloads import PayloadError, pair_from_row, pair_training_fields
from prefloop.data.records import PreferencePair, PromptItem, Response
from prefloop.engine.roles import RewardScores
from prefloop.judge.base import Judgement, JudgeRequest, JudgeUsage
from prefloop.rpc.tensors import check_finite, optional_tensor, to_tensor
from prefloop.v1 import common_pb2


class RequestError(ValueError):
    """A request field is missing or malformed; the message names the field."""


# -- prompts and responses ----
def response_to_msg(r: Response) -> common_pb2.Response:
    """A response message; an unknown score, token count or principle stays unset (not 0)."""
    msg = common_pb2.Response(model=r.model, text=r.text)
    if r.score is not None:
        msg.score = float(r.score)
    if r.prompt_tokens is not None:
        msg.prompt_tokens = r.prompt_tokens
    if r.completion_tokens is not None:
        msg.completion_tokens = r.completion_tokens
    if r.principle is not None:
        msg.principle = r.principle
    return msg


def response_from_msg(msg: common_pb2.Response) -> Response:
    """The record of a response message."""
    return Response(
        msg.model,
        msg.text,
        msg.score if msg.HasField("score") else None,
        prompt_tokens=msg.prompt_tokens if msg.HasField("prompt_tokens") else None,
        completion_tokens=msg.completion_tokens if msg.HasField("completion_tokens") else None,
        principle=msg.principle if msg.HasField("principle") else None,
    )


def item_to_msg(item: PromptItem) -> common_pb2.Prompt:
    """A prompt message: plain text in ``text``, a chat prompt in ``messages``."""
    msg = common_pb2.Prompt(prompt_id=item.prompt_id, source=item.source)
    if isinstance(item.prompt, str):
        msg.text = item.prompt
    else:
        msg.messages.extend(
            common_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in item.prompt
        )
    msg.responses.extend(response_to_msg(r) for r in item.responses)
    msg.generation_failures.extend(item.generation_failures)
    return msg


def item_from_msg(msg: common_pb2.Prompt, field: str) -> PromptItem:
    """The prompt record; needs a prompt_id and exactly one of text / messages."""
    if not msg.prompt_id:
        raise RequestError(f"{field}.prompt_id: must not be empty")
    if msg.messages and msg.text:
        raise RequestError(f"{field}: set text or messages, not both")
    prompt: str | tuple[dict[str, str], ...]
    if msg.messages:
        prompt = tuple({"role": m.role, "content": m.content} for m in msg.messages)
    else:
        prompt = msg.text
    return PromptItem(
        msg.prompt_id,
        prompt,
        tuple(response_from_msg(r) for r in msg.responses),
        msg.source,
        generation_failures=tuple(msg.generation_failures),
    )


def items_from_msgs(msgs: Any, field: str = "prompts") -> list[PromptItem]:
    """Decode a non-empty repeated Prompt field."""
    if len(msgs) == 0:
        raise RequestError(f"{field}: empty batch; send at least one prompt")
    return [item_from_msg(m, f"{field}[{i}]") for i, m in enumerate(msgs)]


# -- selections ----
def selection_to_pairs(sel: Selection) -> list[common_pb2.Pair]:
    """One Pair message per selected pair."""
    return [
        common_pb2.Pair(
            prompt_index=int(sel.prompt_index[k]),
            first=int(sel.first[k]),
            second=int(sel.second[k]),
            score=float(sel.score[k]),
            pseudo_label=int(sel.pseudo_label[k]),
        )
        for k in range(sel.size)
    ]


def selection_from_pairs(pairs: Any, info: dict[str, Any]) -> Selection:
    """The Selection of a SelectResponse, with the dtypes the registry's rules return."""
    return Selection(
        np.array([p.prompt_index for p in pairs], dtype=np.int64),
        np.array([p.first for p in pairs], dtype=np.int64),
        np.array([p.second for p in pairs], dtype=np.int64),
        np.array([p.score for p in pairs], dtype=np.float64),
        np.array([p.pseudo_label for p in pairs], dtype=np.int8),
        info,
    )


def to_json(value: Any) -> str:
    """JSON for diagnostics and parameters: numpy scalars and arrays become plain values."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        return str(o)

    return json.dumps(value, default=default, sort_keys=True)


def json_object(text: str, field: str) -> dict[str, Any]:
    """Parse a JSON-object field ("" means {}), naming the field when it is not one."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(f"{field}: not valid JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(value, dict):
        raise RequestError(f"{field}: must be a JSON object, got {type(value).__name__}")
    return value


# -- judge ----
def judge_request_to_msg(req: JudgeRequest) -> common_pb2.PairToJudge:
    """The pair to judge, with its prompt (without the other responses: the judge needs two)."""
    prompt = item_to_msg(PromptItem(req.item.prompt_id, req.item.prompt, (), req.item.source))
    return common_pb2.PairToJudge(
        pair_id=req.pair_id, prompt=prompt, a=response_to_msg(req.a), b=response_to_msg(req.b)
    )


def judge_request_from_msg(msg: common_pb2.PairToJudge, field: str) -> JudgeRequest:
    """The judge request of a PairToJudge message; both responses are required.

    A score, when set, must be a finite number: NaN and infinities are refused here, naming
    the field and the value, rather than reaching a judge as "no score" or a sure win.
    """
    if not msg.pair_id:
        raise RequestError(f"{field}.pair_id: must not be empty")
    for side in ("prompt", "a", "b"):
        if not msg.HasField(side):
            raise RequestError(f"{field}.{side}: missing")
    for side, response in (("a", msg.a), ("b", msg.b)):
        if response.HasField("score") and not math.isfinite(response.score):
            what = "NaN" if math.isnan(response.score) else f"{response.score} (infinite)"
            raise RequestError(
                f"{field}.{side}.score: is {what}; send a finite score or leave it unset"
            )
    item = item_from_msg(msg.prompt, f"{field}.prompt")
    return JudgeRequest(msg.pair_id, item, response_from_msg(msg.a), response_from_msg(msg.b))


def judgement_to_msg(j: Judgement) -> common_pb2.Annotation:
    """An annotation message; unset optional fields stay unset."""
    msg = common_pb2.Annotation(
        pair_id=j.pair_id,
        winner=int(j.winner),
        probability_a=float(j.probability_a),
        tie=bool(j.tie),
        aspects={k: float(v) for k, v in j.aspects.items()},
    )
    if j.score_a is not None:
        msg.score_a = float(j.score_a)
    if j.score_b is not None:
        msg.score_b = float(j.score_b)
    if j.rationale is not None:
        msg.rationale = j.rationale
    if j.failure is not None:
        msg.failure = j.failure
    u = j.usage
    msg.usage.CopyFrom(
        common_pb2.JudgeUsage(
            calls=u.calls,
            failed_calls=u.failed_calls,
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            seconds=u.seconds,
            cache_hits=u.cache_hits,
            cost=u.cost,
        )
    )
    return msg


def judgement_from_msg(msg: common_pb2.Annotation) -> Judgement:
    """The Judgement of an annotation message."""
    return Judgement(
        pair_id=msg.pair_id,
        winner=int(msg.winner),
        probability_a=float(msg.probability_a),
        score_a=msg.score_a if msg.HasField("score_a") else None,
        score_b=msg.score_b if msg.HasField("score_b") else None,
        tie=bool(msg.tie),
        rationale=msg.rationale if msg.HasField("rationale") else None,
        aspects=dict(msg.aspects),
        failure=msg.failure if msg.HasField("failure") else None,
        usage=JudgeUsage(
            calls=msg.usage.calls,
            failed_calls=msg.usage.failed_calls,
            prompt_tokens=msg.usage.prompt_tokens,
            completion_tokens=msg.usage.completion_tokens,
            seconds=msg.usage.seconds,
            cache_hits=msg.usage.cache_hits,
            cost=msg.usage.cost,
        ),
    )


def judgement_to_dict(j: Judgement) -> dict[str, Any]:
    """A JSON-safe record of a verdict (the judge service's durable log)."""
    return {
        "pair_id": j.pair_id,
        "winner": int(j.winner),
        "probability_a": float(j.probability_a),
        "score_a": j.score_a,
        "score_b": j.score_b,
        "tie": bool(j.tie),
        "rationale": j.rationale,
        "aspects": dict(j.aspects),
        "failure": j.failure,
        "usage": j.usage.as_dict(),
    }


def judgement_from_dict(d: dict[str, Any]) -> Judgement:
    """The inverse of :func:`judgement_to_dict`."""
    return Judgement(
        pair_id=d["pair_id"],
        winner=int(d["winner"]),
        probability_a=float(d["probability_a"]),
        score_a=d.get("score_a"),
        score_b=d.get("score_b"),
        tie=bool(d.get("tie", False)),
        rationale=d.get("rationale"),
        aspects=dict(d.get("aspects") or {}),
        failure=d.get("failure"),
        usage=JudgeUsage(**(d.get("usage") or {})),
    )


# -- labelled pairs ----
def pair_to_msg(pair: PreferencePair) -> common_pb2.LabelledPair:
    """A labelled pair: the TRL row plus what the row flattens (raw prompt, indices, scores)."""
    payload = {"row": pair.to_row(), **pair_training_fields(pair)}
    return common_pb2.LabelledPair(
        pair_id=pair.pair_id,
        run=common_pb2.RunRef(run=pair.run, round=pair.round),
        prompt_id=pair.prompt_id,
        row_json=to_json(payload),
    )


def pair_from_msg(msg: common_pb2.LabelledPair, field: str) -> PreferencePair:
    """The PreferencePair of a LabelledPair message; the row must carry chosen and rejected."""
    payload = json_object(msg.row_json, f"{field}.row_json")
    row = payload.get("row")
    if not isinstance(row, dict):
        raise RequestError(f"{field}.row_json: missing or malformed entry 'row'")
    row = {
        **row,
        "pair_id": msg.pair_id,
        "run": msg.run.run,
        "round": int(msg.run.round),
        "prompt_id": msg.prompt_id,
    }
    try:
        return pair_from_row(row, payload, f"{field}.row_json")
    except PayloadError as e:
        raise RequestError(str(e)) from None


# -- reward estimates ----
def scores_to_estimate(scores: RewardScores, include_features: bool) -> common_pb2.RewardEstimate:
    """A RewardEstimate message of the reward role's arrays."""
    msg = common_pb2.RewardEstimate(
        mean=to_tensor(scores.mean),
        std=to_tensor(scores.std),
        samples=to_tensor(scores.samples),
        model_version=int(scores.model_version),
    )
    if include_features and scores.features is not None:
        msg.features.CopyFrom(to_tensor(scores.features))
    if scores.pref_mean is not None:
        msg.pref_mean.CopyFrom(to_tensor(scores.pref_mean))
    if scores.pref_var is not None:
        msg.pref_var.CopyFrom(to_tensor(scores.pref_var))
    return msg


def estimate_arrays(
    est: common_pb2.RewardEstimate, field: str = "estimate"
) -> dict[str, np.ndarray | None]:
    """Decode and shape-check a RewardEstimate: mean/std (P, N), samples (P, N, S), ..."""
    mean = optional_tensor(est.mean, f"{field}.mean", kinds="f", ndim=2)
    if mean is None:
        raise RequestError(f"{field}.mean: missing; a (P, N) float tensor is required")
    p, n = mean.shape
    std = optional_tensor(est.std, f"{field}.std", kinds="f", shape=(p, n))
    if std is None:
        raise RequestError(f"{field}.std: missing; a (P, N) float tensor is required")
    samples = optional_tensor(est.samples, f"{field}.samples", kinds="f", shape=(p, n, None))
    features = optional_tensor(est.features, f"{field}.features", kinds="f", shape=(p, n, None))
    pref_mean = optional_tensor(est.pref_mean, f"{field}.pref_mean", kinds="f", shape=(p, n, None))
    pref_var = optional_tensor(
        est.pref_var,
        f"{field}.pref_var",
        kinds="f",
        shape=(p, n, None if pref_mean is None else pref_mean.shape[2]),
    )
    return {
        "mean": mean,
        "std": std,
        "samples": samples,
        "features": features,
        "pref_mean": pref_mean,
        "pref_var": pref_var,
    }


def check_estimate_values(
    arrays: dict[str, np.ndarray | None], mask: np.ndarray, field: str
) -> None:
    """Finite values in every real slot; non-negative std and samples with S >= 1."""
    for name, arr in arrays.items():
        if arr is not None:
            check_finite(arr, f"{field}.{name}", mask)
    std = arrays["std"]
    assert std is not None
    if np.any(std[mask] < 0):
        raise RequestError(f"{field}.std: negative standard deviation")
    samples = arrays["samples"]
    if samples is not None and samples.shape[2] < 1:
        raise RequestError(f"{field}.samples: needs at least one sample per response")
    if arrays["pref_var"] is not None and np.any(arrays["pref_var"][mask] < 0):
        raise RequestError(f"{field}.pref_var: negative variance")
