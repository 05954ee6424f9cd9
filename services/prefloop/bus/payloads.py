"""The JSON values of each topic kind, and their decoders.

Each function turns one domain object into the ``value`` of a :class:`~prefloop.bus.base.Record`
(plain JSON: NaN becomes ``null``, bytes become base64), or reads one back, raising
:class:`PayloadError` that names the field at fault. Producers (:mod:`prefloop.bus.publisher`)
and consumers (export, trainer, reward service) share these, so the topic format lives in one
place.

Kind (key; one record per): value fields.

- completions (prompt id; prompt): ``round, prompt_id, prompt, source,
  responses[{model, text, score}]``;
- scores (prompt id; prompt): ``round, prompt_id, model_version, mean[], std[]``;
- selections (prompt id; selected pair): ``round, prompt_id, first, second, score,
  pseudo_label, method, pair_id``;
- annotations (prompt id; dataset row): ``round, order, row`` (``PreferencePair.to_row``), and
  ``pair`` (``prompt_raw, chosen_index, rejected_index, extra``: what the row flattens and the
  trainer needs) when published from a :class:`PreferencePair`;
- judgements (prompt id; judged pair): ``round, pair_id, prompt_id, winner, probability_a, ...``;
- checkpoints (run; model version): ``version, uri, state_b64, state_sha256, state_size``.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prefloop.data.records import PreferencePair, PromptItem, Response
from prefloop.judge.base import Judgement, JudgeRequest


class PayloadError(ValueError):
    """A record's value does not have the shape its topic kind requires."""


def finite_or_none(x: float | None) -> float | None:
    """A float for JSON: NaN and infinities become ``None`` (JSON has no NaN)."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def _field(value: dict[str, Any], name: str, kind: str, types: type | tuple[type, ...]) -> Any:
    if name not in value:
        raise PayloadError(f"{kind} record: field {name!r} is missing")
    v = value[name]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
        raise PayloadError(f"{kind} record: field {name!r} has type {type(v).__name__}")
    return v


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


# -- completions ----------------------------------------------------------------------------
def completion_value(round: int, item: PromptItem) -> dict[str, Any]:
    """A prompt with its candidate responses (the generation step's output)."""
    return {
        "round": round,
        "prompt_id": item.prompt_id,
        "prompt": item.prompt if isinstance(item.prompt, str) else [dict(m) for m in item.prompt],
        "source": item.source,
        "responses": [
            {
                "model": r.model,
                "text": r.text,
                "score": finite_or_none(r.score),
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "principle": r.principle,
            }
            for r in item.responses
        ],
        "generation_failures": list(item.generation_failures),
    }


def item_from_completion(value: dict[str, Any]) -> PromptItem:
    """The :class:`PromptItem` a completions record carries."""
    prompt = _field(value, "prompt", "completions", (str, list))
    responses = _field(value, "responses", "completions", list)
    out: list[Response] = []
    for i, r in enumerate(responses):
        if not isinstance(r, dict) or not isinstance(r.get("model"), str):
            raise PayloadError(f"completions record: responses[{i}] needs model and text")
        if not isinstance(r.get("text"), str):
            raise PayloadError(f"completions record: responses[{i}].text must be a string")
        out.append(
            Response(
                r["model"],
                r["text"],
                r.get("score"),
                prompt_tokens=_optional(r, "prompt_tokens", int, i),
                completion_tokens=_optional(r, "completion_tokens", int, i),
                principle=_optional(r, "principle", str, i),
            )
        )
    failures = value.get("generation_failures", [])
    if not isinstance(failures, list) or not all(isinstance(m, str) for m in failures):
        raise PayloadError("completions record: generation_failures must be a list of names")
    return PromptItem(
        prompt_id=str(_field(value, "prompt_id", "completions", str)),
        prompt=prompt if isinstance(prompt, str) else tuple(dict(m) for m in prompt),
        responses=tuple(out),
        source=str(value.get("source", "")),
        generation_failures=tuple(failures),
    )


def _optional(r: dict[str, Any], key: str, kind: type, i: int) -> Any:
    """An optional typed field of a completions record's response (absent in older records)."""
    value = r.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise PayloadError(f"completions record: responses[{i}].{key} must be {kind.__name__}")
    return value


# -- scores -----------------------------------------------------------------------------------
def score_value(
    round: int,
    prompt_id: str,
    mean: Sequence[float],
    std: Sequence[float],
    model_version: int | None,
) -> dict[str, Any]:
    """One prompt's reward estimates per response (NaN padding becomes ``null``)."""
    return {
        "round": round,
        "prompt_id": prompt_id,
        "model_version": model_version,
        "mean": [finite_or_none(x) for x in mean],
        "std": [finite_or_none(x) for x in std],
    }


# -- selections -------------------------------------------------------------------------------
def selection_value(
    round: int,
    prompt_id: str,
    first: int,
    second: int,
    score: float,
    pseudo_label: int,
    method: str,
    pair_id: str | None,
) -> dict[str, Any]:
    """One pair the acquisition rule picked (``pseudo_label`` 0 = sent to the judge)."""
    return {
        "round": round,
        "prompt_id": prompt_id,
        "first": first,
        "second": second,
        "score": finite_or_none(score),
        "pseudo_label": pseudo_label,
        "method": method,
        "pair_id": pair_id,
    }


# -- annotations ------------------------------------------------------------------------------
def annotation_value(
    round: int, order: int, row: dict[str, Any], pair: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One dataset row with its position: ``(round, order)`` sorts the dataset as written.

    ``pair`` (from :func:`pair_training_fields`) adds what a trainer needs beyond the row.
    """
    value = {"round": round, "order": order, "row": row}
    if pair is not None:
        value["pair"] = pair
    return value


def pair_training_fields(pair: PreferencePair) -> dict[str, Any]:
    """What ``PreferencePair.to_row`` flattens away: the raw prompt, response indices, extras.

    Why: the trainer embeds the prompt as it was given (text or chat), so a pair rebuilt from a
    row alone would get other features than the embedded run's.
    """
    raw: Any = pair.prompt if isinstance(pair.prompt, str) else [dict(m) for m in pair.prompt]
    return {
        "prompt_raw": raw,
        "chosen_index": pair.chosen_index,
        "rejected_index": pair.rejected_index,
        "extra": dict(pair.extra),
    }


def pair_from_row(row: dict[str, Any], fields: dict[str, Any], where: str) -> PreferencePair:
    """The :class:`PreferencePair` of a dataset row plus its :func:`pair_training_fields`.

    Why: the gRPC ``LabelledPair`` and the annotations topic carry the same two parts; one
    decoder keeps both transports producing identical pairs. Raises :class:`PayloadError`
    naming ``where`` and the entry at fault.
    """
    try:
        raw = fields["prompt_raw"]
        prompt: str | tuple[dict[str, str], ...] = raw if isinstance(raw, str) else tuple(raw)
        return PreferencePair(
            pair_id=str(row["pair_id"]),
            run=str(row["run"]),
            round=int(row["round"]),
            prompt_id=str(row["prompt_id"]),
            prompt=prompt,
            chosen=Response(row["chosen_model"], row["chosen"][0]["content"], row["chosen_score"]),
            rejected=Response(
                row["rejected_model"], row["rejected"][0]["content"], row["rejected_score"]
            ),
            chosen_index=int(fields["chosen_index"]),
            rejected_index=int(fields["rejected_index"]),
            acquisition=row["acquisition"],
            judge=row["judge"],
            probability_chosen=float(row["probability_chosen"]),
            tie=bool(row["tie"]),
            label_source=row["label_source"],
            rationale=row.get("rationale"),
            extra=dict(fields.get("extra") or {}),
        )
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise PayloadError(f"{where}: missing or malformed entry {e}") from None


@dataclass(frozen=True)
class Annotation:
    """A decoded annotations record."""

    round: int
    order: int
    row: dict[str, Any]
    pair: dict[str, Any] | None = None

    @property
    def pair_id(self) -> str:
        return str(self.row["pair_id"])

    def labelled_pair(self) -> PreferencePair:
        """The full :class:`PreferencePair` (needs the record's ``pair`` fields)."""
        if self.pair is None:
            raise PayloadError(
                f"annotations record {self.pair_id}: no 'pair' fields; it was published as a "
                "bare row and cannot be trained on"
            )
        return pair_from_row(self.row, self.pair, f"annotations record {self.pair_id}")


def annotation_from_value(value: dict[str, Any]) -> Annotation:
    """The round, order, dataset row (and training fields, if any) of an annotations record."""
    row = _field(value, "row", "annotations", dict)
    for name in ("pair_id", "prompt_id"):
        if not isinstance(row.get(name), str):
            raise PayloadError(f"annotations record: row.{name} must be a string")
    pair = value.get("pair")
    if pair is not None and not isinstance(pair, dict):
        raise PayloadError("annotations record: field 'pair' must be an object")
    return Annotation(
        round=_field(value, "round", "annotations", int),
        order=_field(value, "order", "annotations", int),
        row=row,
        pair=pair,
    )


# -- judgements -------------------------------------------------------------------------------
def judgement_value(round: int, request: JudgeRequest, verdict: Judgement) -> dict[str, Any]:
    """The judge's verdict on one pair (response texts are on the completions topic)."""
    if verdict.pair_id != request.pair_id:
        raise PayloadError(
            f"judgements: verdict for pair {verdict.pair_id} does not match request "
            f"{request.pair_id}"
        )
    return {
        "round": round,
        "pair_id": request.pair_id,
        "prompt_id": request.item.prompt_id,
        "a_model": request.a.model,
        "b_model": request.b.model,
        "winner": int(verdict.winner),
        "probability_a": finite_or_none(verdict.probability_a),
        "score_a": finite_or_none(verdict.score_a),
        "score_b": finite_or_none(verdict.score_b),
        "tie": bool(verdict.tie),
        "rationale": verdict.rationale,
        "aspects": {k: finite_or_none(v) for k, v in verdict.aspects.items()},
    }


# -- checkpoints ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointEvent:
    """A new reward-model version: where to load it, and optionally its bytes inline."""

    version: int
    uri: str
    state: bytes | None = None


def checkpoint_value(version: int, uri: str, state: bytes | None) -> dict[str, Any]:
    """A checkpoint announcement; inline state is base64 with its sha256 for verification."""
    if version < 0:
        raise PayloadError(f"checkpoints: version must be >= 0, got {version}")
    if not uri and state is None:
        raise PayloadError("checkpoints: give a uri or the state bytes")
    return {
        "version": version,
        "uri": uri,
        "state_b64": None if state is None else base64.b64encode(state).decode("ascii"),
        "state_sha256": None if state is None else hashlib.sha256(state).hexdigest(),
        "state_size": None if state is None else len(state),
    }


def checkpoint_from_value(value: dict[str, Any]) -> CheckpointEvent:
    """The checkpoint a record announces; inline bytes are checked against their sha256."""
    version = _field(value, "version", "checkpoints", int)
    uri = _field(value, "uri", "checkpoints", str)
    encoded = value.get("state_b64")
    if encoded is None:
        return CheckpointEvent(version, uri, None)
    try:
        state = base64.b64decode(encoded, validate=True)
    except (ValueError, TypeError) as exc:
        raise PayloadError(f"checkpoints v{version}: state_b64 is not base64") from exc
    if hashlib.sha256(state).hexdigest() != value.get("state_sha256"):
        raise PayloadError(f"checkpoints v{version}: state bytes do not match state_sha256")
    return CheckpointEvent(version, uri, state)
