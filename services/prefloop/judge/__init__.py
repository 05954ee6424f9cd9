"""Judges: say which of two responses to a prompt is better.

Every judge implements the protocol in :mod:`prefloop.judge.base`:

- ``name: str``, recorded as the ``judge`` column of each output pair;
- ``judge(requests: list[JudgeRequest]) -> list[Judgement]``, one judgement per request, in order.
  A request carries the ``pair_id``, the :class:`~prefloop.data.records.PromptItem` and the two
  :class:`~prefloop.data.records.Response`s ``a`` (the acquisition rule's first pick) and ``b``.
  A judgement gives ``winner`` (0 for ``a``, 1 for ``b``), ``probability_a``, optional per-response
  scores, ``tie``, a ``rationale`` and per-aspect scores.

Rules a live judge (an LLM with a rubric, a human annotation queue; both come later) must follow:
labels are deterministic given the run seed and the ``pair_id`` (retries and re-batching return
the same label), a request that cannot be judged raises
:class:`~prefloop.judge.base.JudgeError` naming the pair and the reason instead of guessing, and
batching is the judge's business (the engine may send any number of requests per call).

Available now: :class:`~prefloop.judge.oracle.StoredScoreOracle` (replays stored scores,
deterministically or as a Bradley-Terry noisy judge), built by name with
:func:`~prefloop.judge.registry.make_judge`.
"""

from prefloop.judge.base import Judge, JudgeError, Judgement, JudgeRequest
from prefloop.judge.oracle import StoredScoreOracle
from prefloop.judge.registry import make_judge

__all__ = [
    "Judge",
    "JudgeError",
    "JudgeRequest",
    "Judgement",
    "StoredScoreOracle",
    "make_judge",
]
