"""What the judge service accepts: size limits, the pair's identity, and whose scores count.

A judge call spends the annotation budget, so the judge service trusts nothing in a request
that decides *what* is judged or *how*:

- **Limits** (:class:`JudgeLimits`): pairs per call, id length, text size. Too many pairs or
  too much text is RESOURCE_EXHAUSTED, an over-long id INVALID_ARGUMENT; the message names the
  limit and its value. Checked before anything is decoded.
- **Identity**: the service derives every pair's id from its content with the engine's own
  order-free :func:`~prefloop.engine.round_engine.pair_id` (run, prompt id, the stable ids of
  the two responses) and refuses a request whose ``pair_id`` differs, naming both ids. So one
  pair cannot be bought twice under two ids, and an id cannot be replayed for other content.
  The judge configuration is the other half of a verdict's key (see
  :mod:`prefloop.rpc.verdict_log`): it is fixed per service, so requests do not carry it.
- **Content** (live judges: rubric, pairwise, reward model): the verdict is a function of
  the texts sent, which the identity check ties to the pair id, so the service judges the
  content of the request as it is; prompts and responses need not be in the run's data
  (``responses.source: models`` generates them during the run).
- **Scores** (the stored-score oracle, :class:`StoredScores`): the oracle's verdict is a
  function of the two responses' stored scores, so a client that chose the scores would choose
  the verdict. The service therefore reads the scores itself from the run's data (the
  manifest's ``spec.prompts``, as the engine does) and judges with those. A request may leave a
  score unset or send the stored value; any other value, and any prompt or response that is
  not in the run's data, is INVALID_ARGUMENT naming the field. Replacing rather than trusting
  the scores is the sound choice: the verdict can then only be the one the run's data implies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from prefloop.data.records import PromptItem
from prefloop.engine.round_engine import pair_id
from prefloop.judge.base import JudgeRequest, response_key
from prefloop.rpc.convert import RequestError, judge_request_from_msg
from prefloop.spec import ActiveRun
from prefloop.v1 import common_pb2


class JudgeLimits(BaseModel):
    """Bounds on one Judge call (the defaults fit every run the engine drives)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_pairs_per_call: Annotated[int, Field(ge=1)] = 4096
    """Pairs in one call; more is RESOURCE_EXHAUSTED. The service never enforces less than the
    run's own largest round (batchSize x pairsPerPrompt), so the engine's calls always fit."""
    max_id_chars: Annotated[int, Field(ge=16)] = 256
    """Longest pair_id, prompt_id, prompt source, model name or chat role (characters); longer
    is INVALID_ARGUMENT. Ids name things; the engine's pair ids have 16 characters."""
    max_text_chars: Annotated[int, Field(ge=1)] = 1 << 20
    """Longest prompt text, chat message or response text (characters); longer is
    RESOURCE_EXHAUSTED."""


class LimitExceeded(ValueError):
    """A request exceeds a :class:`JudgeLimits` bound; the service answers RESOURCE_EXHAUSTED."""


def judge_config_key(run: ActiveRun) -> str:
    """Fingerprint of the run's judge: what shapes its verdicts in ``spec.judge`` (not where or
    how hard it runs), the judge's seed and its prompt texts
    (:func:`~prefloop.judge.from_spec.judge_config_key`)."""
    from prefloop.engine.build import judge_seed
    from prefloop.judge.from_spec import judge_config_key as key_of_spec

    return key_of_spec(run.spec.judge, judge_seed(run))


@dataclass(frozen=True)
class _StoredPrompt:
    prompt: str | tuple[dict[str, str], ...]
    scores: dict[str, float | None]


class StoredScores:
    """The stored score of every response in the run's data (what the oracle reveals)."""

    def __init__(self, items: Sequence[PromptItem], source: str) -> None:
        self.source = source
        self.prompts = {
            it.prompt_id: _StoredPrompt(it.prompt, {response_key(r): r.score for r in it.responses})
            for it in items
        }

    @classmethod
    def from_run(cls, run: ActiveRun, manifest_dir: Path | None) -> StoredScores:
        """Read the run's prompts and responses exactly as the engine does."""
        from prefloop.engine.runner import load_pool

        pool, heldout = load_pool(run, manifest_dir)
        return cls([*pool, *heldout], str(run.spec.prompts.path))

    def apply(self, request: JudgeRequest, field: str) -> JudgeRequest:
        """The request with the stored scores; refuse content or scores the data does not hold."""
        pid = request.item.prompt_id
        stored = self.prompts.get(pid)
        if stored is None:
            raise RequestError(
                f"{field}.prompt.prompt_id: {pid!r} is not a prompt of the run's data "
                f"({self.source}); the oracle judges only the run's stored responses"
            )
        if stored.prompt != request.item.prompt:
            raise RequestError(f"{field}.prompt: differs from prompt {pid!r} in the run's data")
        sides = []
        for side, response in (("a", request.a), ("b", request.b)):
            key = response_key(response)
            if key not in stored.scores:
                raise RequestError(
                    f"{field}.{side}: prompt {pid!r} has no response by model "
                    f"{response.model!r} with this text in the run's data"
                )
            score = stored.scores[key]
            if response.score is not None and response.score != score:
                raise RequestError(
                    f"{field}.{side}.score: {response.score} disagrees with the stored score "
                    f"{score} of this response; the judge service takes scores from the run's "
                    "data (leave the score unset or send the stored value)"
                )
            sides.append(replace(response, score=score))
        return replace(request, a=sides[0], b=sides[1])


class PairIntake:
    """Turns a Judge call's pairs into checked requests (limits, identity, stored scores).

    Args:
        run: the run the service judges for.
        limits: the size bounds.
        stored: the run's stored scores (the oracle), or None for a judge that reads content.
    """

    def __init__(self, run: ActiveRun, limits: JudgeLimits, stored: StoredScores | None) -> None:
        self.run_name = run.metadata.name
        self.limits = limits
        self.stored = stored
        self.max_pairs = max(
            limits.max_pairs_per_call, run.spec.batch_size * run.spec.pairs_per_prompt
        )

    def decode(self, pairs: Sequence[common_pb2.PairToJudge]) -> list[JudgeRequest]:
        """Checked requests, in order.

        Raises:
            LimitExceeded: too many pairs or too much text.
            RequestError: an id too long, a field missing, an id that is not the pair's, a
                prompt, response or score that is not the run's.
        """
        if not pairs:
            raise RequestError("pairs: empty batch; send at least one pair")
        if len(pairs) > self.max_pairs:
            raise LimitExceeded(
                f"pairs: {len(pairs)} pairs in one call exceed the limit max_pairs_per_call "
                f"= {self.max_pairs}; split the batch"
            )
        out = []
        for i, msg in enumerate(pairs):
            field = f"pairs[{i}]"
            self._check_sizes(msg, field)
            request = judge_request_from_msg(msg, field)
            derived = pair_id(self.run_name, request.item, request.a, request.b)
            if request.pair_id != derived:
                raise RequestError(
                    f"{field}.pair_id: {request.pair_id!r} is not this pair's id; the id of its "
                    f"content (run, prompt_id, the two responses) is {derived!r}"
                )
            out.append(request if self.stored is None else self.stored.apply(request, field))
        return out

    def _check_sizes(self, msg: common_pb2.PairToJudge, field: str) -> None:
        ids = [("pair_id", msg.pair_id), ("prompt.prompt_id", msg.prompt.prompt_id)]
        ids += [("prompt.source", msg.prompt.source), ("a.model", msg.a.model)]
        ids += [("b.model", msg.b.model)]
        ids += [(f"prompt.messages[{k}].role", m.role) for k, m in enumerate(msg.prompt.messages)]
        for name, value in ids:
            if len(value) > self.limits.max_id_chars:
                raise RequestError(
                    f"{field}.{name}: {len(value)} characters exceed the limit max_id_chars "
                    f"= {self.limits.max_id_chars}"
                )
        texts = [("prompt.text", msg.prompt.text), ("a.text", msg.a.text), ("b.text", msg.b.text)]
        texts += [
            (f"prompt.messages[{k}].content", m.content) for k, m in enumerate(msg.prompt.messages)
        ]
        for name, value in texts:
            if len(value) > self.limits.max_text_chars:
                raise LimitExceeded(
                    f"{field}.{name}: {len(value)} characters exceed the limit max_text_chars "
                    f"= {self.limits.max_text_chars}"
                )
        if msg.prompt.responses:
            raise RequestError(
                f"{field}.prompt.responses: must be empty; the two responses go in a and b"
            )
