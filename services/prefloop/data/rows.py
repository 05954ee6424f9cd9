"""Turn one stored row into a :class:`PromptItem`, for each kind of data file.

Three kinds of rows exist:

- ``responses``: a prompt with its scored candidate answers, as in the shipped AlpacaEval file
  (``{prompt_id, prompt, source, responses: [{model, text, score}]}``) or ActiveUltraFeedback's
  annotated sets (``completions: [{model, response_text, overall_score}]``). At least 2 answers.
- ``prompts``: a prompt alone (``{prompt_id?, prompt, source?}``), for a live generator.
- ``pairs``: an offline labelled pair, either strings (``{prompt, chosen, rejected, subset?}`` as in
  hh-rlhf) or TRL's conversational format where ``prompt``, ``chosen`` and ``rejected`` are message
  lists (``chosen`` may repeat the prompt messages, as ActiveUltraFeedback's output does). It
  becomes a PromptItem with exactly 2 responses scored 1.0 (chosen) and 0.0 (rejected), placed in a
  pseudo-random order fixed by the prompt id, so the position of the chosen answer carries no
  information that a tie-breaking rule or a position-biased model could exploit.

Every parser appends ``"<field> <what is wrong>"`` messages to a list instead of raising, so a
reader can report all the problems of a file at once.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from prefloop.data.records import Message, PromptItem, Response, stable_id

RowKind = Literal["prompts", "responses", "pairs"]
KindChoice = Literal["auto", "prompts", "responses", "pairs"]
ROW_KINDS: tuple[RowKind, ...] = ("prompts", "responses", "pairs")

UNKNOWN_MODEL = "unknown"
"""Model name of a pair response whose row has no ``chosen_model`` / ``rejected_model``."""

CHOSEN_SCORE = 1.0
REJECTED_SCORE = 0.0


def show(value: object, width: int = 60) -> str:
    """A short repr for error messages (long strings are cut)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _present(row: dict[str, Any], key: str) -> bool:
    return row.get(key) is not None


def detect_kind(row: dict[str, Any]) -> RowKind | None:
    """The kind a row looks like from its fields, or None if it has none of the known fields.

    Why: ``kind="auto"`` lets a user pass any supported file without saying what it holds.
    """
    if _present(row, "responses") or _present(row, "completions"):
        return "responses"
    if _present(row, "chosen") or _present(row, "rejected"):
        return "pairs"
    if _present(row, "prompt"):
        return "prompts"
    return None


def prompt_key(prompt: str | tuple[Message, ...]) -> str:
    """The text a missing ``prompt_id`` is derived from: the prompt, or its messages as JSON."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps([dict(m) for m in prompt], ensure_ascii=False, sort_keys=True)


def parse_messages(value: object, field: str, errors: list[str]) -> tuple[Message, ...] | None:
    """A list of ``{role, content}`` dicts as a tuple of messages (other keys are dropped)."""
    if not isinstance(value, list | tuple) or not value:
        errors.append(f"{field} must be a non-empty list of {{role, content}} messages")
        return None
    messages: list[Message] = []
    ok = True
    for i, msg in enumerate(value):
        if not isinstance(msg, dict):
            errors.append(f"{field}[{i}] must be a {{role, content}} object, got {show(msg)}")
            ok = False
            continue
        role, content = msg.get("role"), msg.get("content")
        if not isinstance(role, str) or not role.strip():
            errors.append(f"{field}[{i}].role must be a non-empty string, got {show(role)}")
            ok = False
        if not isinstance(content, str):
            errors.append(f"{field}[{i}].content must be a string, got {show(content)}")
            ok = False
        if ok:
            messages.append({"role": str(role), "content": str(content)})
    return tuple(messages) if ok else None


def parse_prompt(row: dict[str, Any], errors: list[str]) -> str | tuple[Message, ...] | None:
    """The ``prompt`` field: a non-empty string or a non-empty list of chat messages."""
    value = row.get("prompt")
    if value is None:
        errors.append("prompt is missing")
        return None
    if isinstance(value, str):
        if not value.strip():
            errors.append("prompt must be a non-empty string")
            return None
        return value
    if isinstance(value, list | tuple):
        return parse_messages(value, "prompt", errors)
    errors.append(f"prompt must be a string or a list of messages, got {show(value)}")
    return None


def parse_prompt_id(
    row: dict[str, Any], prompt: str | tuple[Message, ...] | None, errors: list[str]
) -> str | None:
    """``prompt_id`` as stored (ints are turned into strings), else ``stable_id`` of the prompt."""
    value = row.get("prompt_id")
    if value is None:
        return stable_id(prompt_key(prompt)) if prompt is not None else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        errors.append(f"prompt_id must be a string, got {show(value)}")
        return None
    text = str(value)
    if not text.strip():
        errors.append("prompt_id must be a non-empty string")
        return None
    return text


def _parse_source(row: dict[str, Any], keys: tuple[str, ...], errors: list[str]) -> str:
    for key in keys:
        value = row.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(f"{key} must be a string, got {show(value)}")
            return ""
        return value
    return ""


def parse_score(value: object, field: str, errors: list[str]) -> float | None:
    """An optional finite number; ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{field} must be a number, got {show(value)}")
        return None
    score = float(value)
    if not math.isfinite(score):
        errors.append(f"{field} must be a finite number, got {score}")
        return None
    return score


def _non_empty_text(value: object, field: str, errors: list[str]) -> str | None:
    if not isinstance(value, str):
        errors.append(f"{field} must be a string, got {show(value)}")
        return None
    if not value.strip():
        errors.append(f"{field} must not be empty")
        return None
    return value


def parse_responses(row: dict[str, Any], errors: list[str]) -> tuple[Response, ...] | None:
    """``responses: [{model, text, score?}]`` or ``completions: [{model, response_text, ...}]``."""
    if _present(row, "responses") and _present(row, "completions"):
        errors.append("row has both 'responses' and 'completions'; keep one")
        return None
    if _present(row, "responses"):
        field, text_key, score_key = "responses", "text", "score"
    elif _present(row, "completions"):
        field, text_key, score_key = "completions", "response_text", "overall_score"
    else:
        errors.append("responses is missing (or 'completions')")
        return None
    entries = row[field]
    if not isinstance(entries, list | tuple):
        errors.append(f"{field} must be a list, got {show(entries)}")
        return None
    if len(entries) < 2:
        errors.append(f"{field} must hold at least 2 responses to compare, got {len(entries)}")
        return None
    responses: list[Response] = []
    ok = True
    for i, entry in enumerate(entries):
        where = f"{field}[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} must be an object, got {show(entry)}")
            ok = False
            continue
        n_before = len(errors)
        model = entry.get("model")
        if not isinstance(model, str) or not model.strip():
            errors.append(f"{where}.model must be a non-empty string, got {show(model)}")
        text = _non_empty_text(entry.get(text_key), f"{where}.{text_key}", errors)
        score = parse_score(entry.get(score_key), f"{where}.{score_key}", errors)
        if len(errors) > n_before or text is None:
            ok = False
            continue
        responses.append(Response(model=str(model), text=text, score=score))
    return tuple(responses) if ok else None


def _pair_side_text(
    value: object, field: str, prompt: str | tuple[Message, ...], errors: list[str]
) -> str | None:
    """The answer text of ``chosen`` / ``rejected``: a string, or a message list ending in it."""
    if isinstance(value, str):
        return _non_empty_text(value, field, errors)
    if not isinstance(value, list | tuple):
        errors.append(f"{field} must be a string or a list of messages, got {show(value)}")
        return None
    messages = parse_messages(value, field, errors)
    if messages is None:
        return None
    prefix = tuple(PromptItem("", prompt).prompt_messages())
    if len(messages) > len(prefix) and messages[: len(prefix)] == prefix:
        messages = messages[len(prefix) :]
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        errors.append(
            f"{field} must be one assistant message (optionally after the prompt's messages), "
            f"got {len(messages)} message(s) with roles {[m['role'] for m in messages]}"
        )
        return None
    return _non_empty_text(messages[0]["content"], f"{field}[-1].content", errors)


def _model_name(row: dict[str, Any], key: str, errors: list[str]) -> str:
    value = row.get(key)
    if value is None:
        return UNKNOWN_MODEL
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{key} must be a non-empty string, got {show(value)}")
        return UNKNOWN_MODEL
    return value


def chosen_goes_second(prompt_id: str) -> bool:
    """Whether the chosen answer of a pair is placed second: a fair coin fixed by the prompt id.

    Why: a pair pool stored as (chosen, rejected) would otherwise always put the winner first,
    and a "first wins ties" rule or a position-biased reward model would read the label off it.
    """
    return int(stable_id("pair-order", prompt_id), 16) % 2 == 1


def parse_row(row: dict[str, Any], kind: RowKind, errors: list[str]) -> PromptItem | None:
    """The PromptItem a row of ``kind`` stands for, or None with the problems in ``errors``."""
    n_before = len(errors)
    prompt = parse_prompt(row, errors)
    prompt_id = parse_prompt_id(row, prompt, errors)
    if kind == "prompts":
        source = _parse_source(row, ("source",), errors)
        if prompt is None or prompt_id is None or len(errors) > n_before:
            return None
        return PromptItem(prompt_id=prompt_id, prompt=prompt, source=source)
    if kind == "responses":
        source = _parse_source(row, ("source",), errors)
        responses = parse_responses(row, errors)
        if prompt is None or prompt_id is None or responses is None or len(errors) > n_before:
            return None
        return PromptItem(prompt_id=prompt_id, prompt=prompt, responses=responses, source=source)
    if kind == "pairs":
        source = _parse_source(row, ("source", "subset"), errors)
        chosen_model = _model_name(row, "chosen_model", errors)
        rejected_model = _model_name(row, "rejected_model", errors)
        if prompt is None:
            for side in ("chosen", "rejected"):
                if row.get(side) is None:
                    errors.append(f"{side} is missing")
            return None
        texts: dict[str, str | None] = {}
        for side in ("chosen", "rejected"):
            if row.get(side) is None:
                errors.append(f"{side} is missing")
                texts[side] = None
            else:
                texts[side] = _pair_side_text(row[side], side, prompt, errors)
        chosen_text, rejected_text = texts["chosen"], texts["rejected"]
        if chosen_text is None or rejected_text is None or prompt_id is None:
            return None
        if len(errors) > n_before:
            return None
        chosen = Response(model=chosen_model, text=chosen_text, score=CHOSEN_SCORE)
        rejected = Response(model=rejected_model, text=rejected_text, score=REJECTED_SCORE)
        pair = (rejected, chosen) if chosen_goes_second(prompt_id) else (chosen, rejected)
        return PromptItem(prompt_id=prompt_id, prompt=prompt, responses=pair, source=source)
    raise ValueError(f"unknown row kind {kind!r}; expected one of {ROW_KINDS}")
