"""Judges: say which of two responses to a prompt is better.

Every judge implements the protocol in :mod:`prefloop.judge.base`:

- ``name: str``, recorded as the ``judge`` column of each output pair;
- ``judge(requests: list[JudgeRequest]) -> list[Judgement]``, one judgement per request, in order.
  A request carries the ``pair_id``, the :class:`~prefloop.data.records.PromptItem` and the two
  :class:`~prefloop.data.records.Response`s ``a`` (the acquisition rule's first pick) and ``b``.
  A judgement gives ``winner`` (0 for ``a``, 1 for ``b``), ``probability_a``, optional per-response
  scores, ``tie``, a ``rationale``, per-aspect scores, what it cost (``usage``) and, when the
  judge could not label the pair, ``failure``.

Rules every judge follows: labels are deterministic given the run seed and the request's content
(retries and re-batching return the same label), a pair that cannot be judged comes back with
``failure`` set (or, for the stored-score oracle, raises :class:`~prefloop.judge.base.JudgeError`)
instead of a guessed label, and batching is the judge's business (the engine may send any number
of requests per call).

Available (built from ``spec.judge`` by :func:`~prefloop.judge.from_spec.build_judge_from_spec`,
or by name with :func:`~prefloop.judge.registry.make_judge`):

- :class:`~prefloop.judge.oracle.StoredScoreOracle` (``oracle``): replays stored scores,
  deterministically or as a Bradley-Terry noisy judge;
- :class:`~prefloop.judge.rubric.RubricJudge` (``rubric``): an LLM rates each response on
  UltraFeedback's four aspects (expected rating from first-token log-probabilities);
- :class:`~prefloop.judge.pairwise.PairwiseJudge` (``pairwise``): an LLM compares the two
  responses, asked in both orders;
- :class:`~prefloop.judge.reward_model.RewardModelJudge` (``reward_model``): a local
  sequence-classification reward model scores each response.

The LLM judges run on an OpenAI-compatible endpoint or a local transformers model
(:mod:`prefloop.judge.llm_backends`) and never pay twice for the same request
(:mod:`prefloop.judge.cache`).
"""

from prefloop.judge.base import Judge, JudgeError, Judgement, JudgeRequest, JudgeUsage
from prefloop.judge.oracle import StoredScoreOracle
from prefloop.judge.registry import make_judge

__all__ = [
    "Judge",
    "JudgeError",
    "JudgeRequest",
    "JudgeUsage",
    "Judgement",
    "StoredScoreOracle",
    "make_judge",
]
