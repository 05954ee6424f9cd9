"""The human judge's part of the ActiveRun spec (``judge.kind: human``, ``judge.human``).

People label the pairs the acquisition rule picked on a web page (``prefloop judge-ui``, or
the judge service's ``--ui-port``; docs/human-judge.md): each pair goes to
``annotatorsPerPair`` people, the majority vote is the label, and a round may time out, its
unlabelled pairs then carried or dropped. The annotators' tokens are secrets, so the spec names
where to read them (a file or an environment variable), never the tokens themselves.

Kept apart from :mod:`prefloop.spec` (which imports it) so the judge reads its settings without
the rest of the spec; it imports nothing heavy.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from prefloop.spec_base import SpecModel


class HumanJudgeSpec(SpecModel):
    """How people label the pairs (`judge.kind: human`; docs/human-judge.md)."""

    annotators_per_pair: Annotated[int, Field(ge=1, le=50)] = 1
    """People who must vote on each pair (A, B or tie; a skip is no vote); the label is the
    majority, a split vote a tie. Agreement (Cohen's kappa for 2, Fleiss' for more) is reported
    per round."""
    round_timeout_seconds: Annotated[float, Field(gt=0.0)] | None = None
    """How long a round waits for labels; None waits until every pair is labelled."""
    on_timeout: Literal["carry", "drop"] = "carry"
    """Pairs still unlabelled when the round times out (recorded as failed, no budget spent,
    never labelled by anything else): `carry` asks for them again with the next round's pairs of
    the same run (first in line, shown only to people who have not labelled them; also on
    `--resume`); `drop` removes them for good and counts them (`human_pairs_dropped`)."""
    tokens_file: Annotated[str, Field(min_length=1)] | None = None
    """A YAML file mapping each annotator's name to their login token (relative to the
    manifest). Without it the tokens come from `tokensEnv`."""
    tokens_env: Annotated[str, Field(min_length=1)] = "PREFLOOP_ANNOTATOR_TOKENS"
    """Environment variable holding `name=token,name=token` when there is no `tokensFile`."""
    leads: list[Annotated[str, Field(min_length=1)]] = []  # noqa: RUF012 (pydantic copies it)
    """Annotators who may open the queue view (every pair's votes, the round's progress)."""

    @model_validator(mode="after")
    def _leads_distinct(self) -> HumanJudgeSpec:
        if len(set(self.leads)) != len(self.leads):
            raise ValueError(f"leads must be distinct, got {self.leads}")
        return self


def carries_timed_out_pairs(run: Any) -> bool:
    """Whether ``run`` (an ActiveRun) asks a timed-out round's pairs again in its next round.

    Why: only people are waited for with a timeout; with ``onTimeout: carry`` the round engine
    puts the pairs still short of votes in front of the next round's (docs/human-judge.md).
    """
    judge = run.spec.judge
    return judge.kind == "human" and (judge.human or HumanJudgeSpec()).on_timeout == "carry"
