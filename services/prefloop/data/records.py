"""The records every layer shares: prompts, responses, scored pools and labelled pairs.

They are plain frozen dataclasses so that algorithms, services and the on-disk formats agree
on one vocabulary. Identifiers are deterministic (derived from the run, the round, the prompt and
the responses), which is what makes consumers idempotent and replays exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Message = dict[str, str]
"""One chat message: ``{"role": "user" | "assistant" | "system", "content": str}``."""


def stable_id(*parts: object, length: int = 16) -> str:
    """A short deterministic id from its parts (sha256), the same in every process and run."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return digest[:length]


@dataclass(frozen=True)
class Response:
    """One answer to a prompt.

    ``score`` is a stored judge score when the data set carries one (the research setting:
    AlpacaEval win probabilities, or 1/0 for an offline chosen/rejected pair); ``None`` otherwise.
    A generated response also carries what it cost (``prompt_tokens`` fed to the model,
    ``completion_tokens`` it wrote) and the UltraFeedback ``principle`` of its system prompt, if
    any; stored responses leave them ``None``. None of them enters a response's identity
    (``judge.base.response_key``: model and text).
    """

    model: str
    text: str
    score: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    principle: str | None = None


@dataclass(frozen=True)
class PromptItem:
    """A prompt with its candidate responses (the pool the acquisition rule chooses from)."""

    prompt_id: str
    prompt: str | tuple[Message, ...]
    responses: tuple[Response, ...] = ()
    source: str = ""
    generation_failures: tuple[str, ...] = ()
    """Models of the pool that gave no response to this prompt (failed after their retries)."""

    def prompt_messages(self) -> list[Message]:
        """The prompt as a chat message list (TRL's conversational format)."""
        if isinstance(self.prompt, str):
            return [{"role": "user", "content": self.prompt}]
        return [dict(m) for m in self.prompt]

    def prompt_text(self) -> str:
        """The prompt flattened to text, for embedders that read plain strings."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.prompt)


@dataclass(frozen=True)
class ScoredBatch:
    """A batch of P prompts with up to N responses each, as padded arrays.

    ``mask[p, n]`` is True where prompt p has an n-th response; padded slots hold NaN scores.
    Acquisition rules work on these arrays, vectorised over prompts.
    """

    items: tuple[PromptItem, ...]
    mask: np.ndarray  # (P, N) bool
    judge_scores: np.ndarray  # (P, N) float, NaN where unknown or padded

    @staticmethod
    def from_items(items: list[PromptItem] | tuple[PromptItem, ...]) -> ScoredBatch:
        """Pad a list of prompts into arrays; every prompt needs at least 2 responses."""
        n_max = max((len(it.responses) for it in items), default=0)
        mask = np.zeros((len(items), n_max), dtype=bool)
        scores = np.full((len(items), n_max), np.nan)
        for p, it in enumerate(items):
            mask[p, : len(it.responses)] = True
            for n, r in enumerate(it.responses):
                if r.score is not None:
                    scores[p, n] = r.score
        return ScoredBatch(tuple(items), mask, scores)

    @property
    def num_prompts(self) -> int:
        return len(self.items)


LabelSource = Literal["judge", "identity", "pseudo"]


@dataclass(frozen=True)
class PreferencePair:
    """A labelled pair: one row of the output data set.

    ``label_source`` says where the label came from: the judge, the acquisition rule itself
    (DeltaQwen labels by model identity) or the model's own confident prediction (ADPO's
    pseudo-labels, kept out of the data set unless asked for).
    """

    pair_id: str
    run: str
    round: int
    prompt_id: str
    prompt: str | tuple[Message, ...]
    chosen: Response
    rejected: Response
    chosen_index: int
    rejected_index: int
    acquisition: str
    judge: str
    probability_chosen: float = 1.0
    tie: bool = False
    label_source: LabelSource = "judge"
    rationale: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The TRL conversational row: ``prompt``, ``chosen``, ``rejected`` as message lists."""
        item = PromptItem(self.prompt_id, self.prompt)
        prompt_msgs = item.prompt_messages()
        return {
            "pair_id": self.pair_id,
            "prompt_id": self.prompt_id,
            "prompt": prompt_msgs,
            "chosen": [{"role": "assistant", "content": self.chosen.text}],
            "rejected": [{"role": "assistant", "content": self.rejected.text}],
            "chosen_model": self.chosen.model,
            "rejected_model": self.rejected.model,
            "chosen_score": self.chosen.score,
            "rejected_score": self.rejected.score,
            "probability_chosen": self.probability_chosen,
            "tie": self.tie,
            "label_source": self.label_source,
            "round": self.round,
            "acquisition": self.acquisition,
            "judge": self.judge,
            "run": self.run,
            "rationale": self.rationale,
        }
