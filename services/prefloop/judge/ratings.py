"""Reading an LLM judge's answer: label probabilities from the first token, or a strict parse.

A judge asked for "one integer from 1 to 5" (the rubric judge) or "one letter, A, B or C" (the
pairwise judge) answers with that label as its first token. ActiveUltraFeedback
(https://arxiv.org/abs/2603.09692, ``get_raw_annotations.py``) reads the top-20 log-probabilities
of the first generated position, keeps the five digits (a missing one counts as probability 0),
exponentiates and renormalises over them, and scores the aspect as the expected rating
``sum_s s * p(s)``: a continuous score that separates two responses the integer ratings would
tie. :func:`label_probabilities` does this for any label set; tokens are matched after stripping
whitespace (``" 4"`` is a 4) and tokens that mean the same label add up.

When the backend returns no log-probabilities (a hosted API without them, ``topLogprobs: 0``) or
none of the labels is among them, the reply text is parsed strictly (:func:`parse_label`): it
must start with a label, followed by nothing or by a non-alphanumeric character ("4", "4.",
"B\\nBecause ..."). A reply that passes neither reading is refused, and the HTTP client retries
it within its bounded budget (:func:`reply_problem` is the check it calls). Log-probabilities
that cannot be log-probabilities (NaN, or above 0) are garbage: refused the same way, never
renormalised into a rating.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

LOGPROB_TOLERANCE = 1e-4
"""How far above 0 a log-probability may be (rounding in servers) before it is garbage."""


class GarbageLogprobs(ValueError):
    """First-token log-probabilities that cannot be log-probabilities."""


@dataclass(frozen=True)
class LabelReading:
    """What a reply says about the labels: a probability per label and where it came from.

    ``probabilities`` follow the order of the labels asked for and sum to 1; a text reading is
    one-hot.
    """

    probabilities: tuple[float, ...]
    source: Literal["logprobs", "text"]

    def expected(self, values: Sequence[float]) -> float:
        """The expected value of the labels' ``values`` (the expected rating for 1..5)."""
        return float(np.dot(self.probabilities, np.asarray(values, dtype=float)))

    def argmax(self) -> int:
        """The index of the most likely label (the first one on equal probabilities)."""
        return int(np.argmax(self.probabilities))


def label_probabilities(
    top_logprobs: Sequence[tuple[str, float]], labels: Sequence[str]
) -> tuple[float, ...] | None:
    """Each label's probability among the labels at the first position, or None if none appears.

    Why renormalise over the labels: the judge was told to answer with a label, so the mass it
    puts elsewhere (a space, "The") says nothing about which label it means.

    Raises:
        GarbageLogprobs: a log-probability is NaN or above 0.
    """
    index = {label: i for i, label in enumerate(labels)}
    mass = np.full(len(labels), -math.inf)
    found = False
    for token, logprob in top_logprobs:
        if math.isnan(logprob) or logprob > LOGPROB_TOLERANCE:
            raise GarbageLogprobs(f"token {token!r} has log-probability {logprob}")
        i = index.get(token.strip())
        if i is None or logprob == -math.inf:
            continue
        mass[i] = np.logaddexp(mass[i], min(logprob, 0.0))
        found = True
    if not found:
        return None
    p = np.exp(mass - mass.max())
    return tuple(float(x) for x in p / p.sum())


def parse_label(text: str, labels: Sequence[str]) -> int | None:
    """The index of the label a reply starts with, or None (the strict reply format).

    Why strict: "I would rate this 4 out of 5, not 2" must not be read as a rating by a lenient
    first-digit search; only a reply that begins with the label, as instructed, counts.
    """
    alternatives = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    match = re.match(rf"\s*[\[(*\"']*({alternatives})(?![A-Za-z0-9])", text)
    if match is None:
        return None
    return list(labels).index(match.group(1))


def read_labels(
    text: str, top_logprobs: Sequence[tuple[str, float]] | None, labels: Sequence[str]
) -> LabelReading | None:
    """The reply's label probabilities: from the first-token log-probabilities when they name a
    label, else from the strict text format; None when neither reads.

    Raises:
        GarbageLogprobs: see :func:`label_probabilities`.
    """
    if top_logprobs is not None:
        probs = label_probabilities(top_logprobs, labels)
        if probs is not None:
            return LabelReading(probs, "logprobs")
    index = parse_label(text, labels)
    if index is None:
        return None
    return LabelReading(tuple(1.0 if i == index else 0.0 for i in range(len(labels))), "text")


def reply_problem(
    text: str, top_logprobs: Sequence[tuple[str, float]] | None, labels: Sequence[str]
) -> str | None:
    """Why a reply cannot be read (the retry reason), or None when it can.

    Why a separate check: the HTTP client calls it on every attempt and retries a refused reply
    within its bounded budget, so a judge never invents a label for an unreadable answer.
    """
    try:
        reading = read_labels(text, top_logprobs, labels)
    except GarbageLogprobs as exc:
        return f"garbage first-token log-probabilities: {exc}"
    if reading is None:
        shown = " ".join(text.split())[:60]
        return f"no label of {', '.join(labels)} in the reply {shown!r} or its log-probabilities"
    return None
