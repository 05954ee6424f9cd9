"""UltraFeedback-style system prompts: a principle per (prompt, model), then a prompt of it.

UltraFeedback (Cui et al. 2023, https://arxiv.org/abs/2310.01377) and ActiveUltraFeedback
(https://arxiv.org/abs/2603.09692, completion step) widen the spread of a pool's answers by
giving each model, for each prompt, a system prompt that stresses one *principle*: the principle
is drawn from a set that depends on the prompt's source, then one system prompt of that
principle is drawn:

================================  =======================================================
prompt source                     principles drawn from
================================  =======================================================
``truthful_qa``, ``false_qa``     honesty, truthfulness
``sharegpt``, ``ultrachat``       helpfulness, honesty, truthfulness
``flan*``                         helpfulness, verbalized_calibration
``evol_instruct``                 helpfulness
anything else                     helpfulness, honesty, truthfulness
================================  =======================================================

Harmlessness is UltraFeedback's fifth principle; no source maps to it, so it is used only when
named in ``responses.systemPrompts.principles`` (which replaces the by-source table).

Both draws are seeded by (generation seed, model, prompt id), so a response's system prompt does
not depend on batching, on the other models or on the order of the prompts.

The built-in texts (:data:`PRINCIPLE_PROMPTS`) are prefloop's own wording of each principle,
written for this project after UltraFeedback's scheme (they are not UltraFeedback's texts). To
use UltraFeedback's original prompts, put them in a JSON or YAML file ``{principle: [text, ...]}``
and point ``responses.systemPrompts.path`` at it (principles the file leaves out keep the
built-in texts).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import yaml

from prefloop.data.records import Message, PromptItem, stable_id

Principle = Literal[
    "helpfulness", "honesty", "truthfulness", "verbalized_calibration", "harmlessness"
]
PRINCIPLES: tuple[str, ...] = get_args(Principle)

PRINCIPLE_PROMPTS: dict[str, tuple[str, ...]] = {
    "helpfulness": (
        "You are a helpful assistant. Give answers that are correct, relevant and current, and "
        "make them clear and engaging so the user learns something useful.",
        "As an AI assistant, your job is to be a dependable source of help: check your facts, "
        "cover what the user needs to know, and explain it well.",
        "Answer as a knowledgeable assistant who wants the user to succeed: be accurate, be "
        "thorough where it matters, and keep the answer easy to follow.",
        "You are an assistant whose answers teach. Make each reply informative and positive, "
        "and add the detail that turns a short answer into a useful one.",
        "Help the user as well as you can: understand what is really being asked, answer it "
        "directly and correctly, and offer relevant context or next steps.",
        "Be an assistant people are glad to ask: precise, up to date, and engaging, with "
        "explanations that spark curiosity rather than bury the answer.",
    ),
    "honesty": (
        "You are an honest assistant. Say plainly when you are unsure or do not know, and never "
        "present a guess as a fact.",
        "As an AI assistant, be truthful about the limits of your knowledge: if a question "
        "cannot be answered with confidence, say so and explain what is uncertain.",
        "Answer honestly. When the question rests on a false premise, point it out politely "
        "instead of playing along, and admit uncertainty where it exists.",
        "You value honesty over sounding impressive: state what you know, flag what you are "
        "not sure of, and do not make things up.",
        "Be candid with the user. If you lack the information to answer, say 'I don't know' "
        "or suggest how the user could find out.",
        "As an assistant, your answers must be sincere: distinguish facts from opinions and "
        "guesses, and be open about how confident you are.",
    ),
    "truthfulness": (
        "You are a truthful assistant. Base every claim on verified facts, and do not invent "
        "details, sources, names or numbers.",
        "As an AI assistant, stay factual: if the question contains a mistaken assumption, "
        "correct it rather than building an answer on it.",
        "Answer only with information you can stand behind. Avoid speculation presented as "
        "fact, and never fabricate references.",
        "Be accurate above all. Check that what you say is consistent with well-established "
        "knowledge, and leave out anything you cannot support.",
        "You are an assistant that does not hallucinate: when unsure of a fact, say so instead "
        "of filling the gap with something plausible.",
        "Keep your answers grounded in reality. Explain when a question does not make sense "
        "or has no factual answer, instead of inventing one.",
    ),
    "verbalized_calibration": (
        "After answering, state how confident you are that your answer is correct, as a "
        "percentage on its own final line, in the form 'Confidence: 80%'. The number should "
        "reflect your real uncertainty.",
    ),
    "harmlessness": (
        "You are a harmless assistant. Help with the request while avoiding content that could "
        "hurt people, property or the environment, and decline unsafe requests politely.",
        "As an AI assistant, respect everyone's safety, privacy and dignity: do not give "
        "advice that could cause harm, and suggest safe alternatives when you decline.",
        "Answer helpfully but never at the cost of someone's wellbeing; avoid dangerous, "
        "discriminatory or illegal guidance.",
        "Be considerate and safe: keep answers free of harmful, offensive or misleading "
        "content, and steer the conversation towards constructive outcomes.",
    ),
}
"""prefloop's own system prompts per principle (after UltraFeedback's scheme; not its texts)."""

SOURCE_PRINCIPLES: dict[str, tuple[str, ...]] = {
    "truthful_qa": ("honesty", "truthfulness"),
    "false_qa": ("honesty", "truthfulness"),
    "sharegpt": ("helpfulness", "honesty", "truthfulness"),
    "ultrachat": ("helpfulness", "honesty", "truthfulness"),
    "flan": ("helpfulness", "verbalized_calibration"),
    "evol_instruct": ("helpfulness",),
}
DEFAULT_PRINCIPLES: tuple[str, ...] = ("helpfulness", "honesty", "truthfulness")


def principles_for_source(source: str) -> tuple[str, ...]:
    """The principles UltraFeedback draws from for a prompt of ``source`` (``flan*`` = flan)."""
    key = source.strip().lower()
    if key.startswith("flan"):
        key = "flan"
    return SOURCE_PRINCIPLES.get(key, DEFAULT_PRINCIPLES)


def load_principle_prompts(path: Path) -> dict[str, tuple[str, ...]]:
    """System prompts from a JSON or YAML file ``{principle: [text, ...]}``.

    Why: UltraFeedback's own texts (or a team's) replace the built-in ones without code.

    Raises:
        ValueError: unreadable file, unknown principle, or a principle without non-empty texts
            (the message names the file and the key).
    """
    try:
        raw = path.read_text(encoding="utf-8")
        data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read system prompts: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a mapping {{principle: [system prompt, ...]}}")
    out: dict[str, tuple[str, ...]] = {}
    for principle, texts in data.items():
        if principle not in PRINCIPLES:
            raise ValueError(
                f"{path}: unknown principle {principle!r}; use one of {', '.join(PRINCIPLES)}"
            )
        if not isinstance(texts, list) or not texts:
            raise ValueError(f"{path}: {principle}: expected a non-empty list of texts")
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f"{path}: {principle}: every system prompt must be a non-empty string")
        out[principle] = tuple(texts)
    return out


@dataclass(frozen=True)
class SystemPromptPolicy:
    """Which system prompt a model gets for a prompt.

    ``mode="none"`` adds none. ``mode="ultrafeedback"`` draws a principle (from ``principles``
    when given, else by the prompt's source) and a system prompt of it from ``prompts``.
    A prompt that already has a system message keeps it and gets no other.
    """

    mode: Literal["none", "ultrafeedback"] = "none"
    principles: tuple[str, ...] = ()
    prompts: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: PRINCIPLE_PROMPTS)

    def __post_init__(self) -> None:
        if self.mode == "none":
            return
        unknown = sorted(set(self.principles) - set(PRINCIPLES))
        if unknown:
            raise ValueError(f"unknown principle(s) {unknown}; use some of {list(PRINCIPLES)}")
        drawable = set(self.principles) or set(DEFAULT_PRINCIPLES).union(
            *SOURCE_PRINCIPLES.values()
        )
        missing = sorted(p for p in drawable if not self.prompts.get(p))
        if missing:
            raise ValueError(f"no system prompts for principle(s) {', '.join(missing)}")

    def choose(self, seed: int, model: str, item: PromptItem) -> tuple[str, str] | None:
        """``(principle, system prompt)`` for ``model`` answering ``item``, or None.

        Why seeded by (seed, model, prompt id): the same answer gets the same system prompt in
        every run with this seed, whatever else is in the batch.
        """
        if self.mode == "none" or _has_system_message(item):
            return None
        rng = random.Random(int(stable_id("system-prompt", seed, model, item.prompt_id), 16))
        principle = rng.choice(self.principles or principles_for_source(item.source))
        return principle, rng.choice(self.prompts[principle])

    def messages(self, seed: int, model: str, item: PromptItem) -> tuple[list[Message], str | None]:
        """The chat messages ``model`` gets for ``item`` and the principle used (None: none)."""
        chosen = self.choose(seed, model, item)
        if chosen is None:
            return item.prompt_messages(), None
        principle, text = chosen
        return [{"role": "system", "content": text}, *item.prompt_messages()], principle


def _has_system_message(item: PromptItem) -> bool:
    return not isinstance(item.prompt, str) and any(m.get("role") == "system" for m in item.prompt)
