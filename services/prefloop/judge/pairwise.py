"""The pairwise judge: an LLM compares two responses, asked in both orders to cancel position bias.

LLM judges favour one position (often the first) when shown two answers; MT-Bench's pairwise
judge (Zheng et al. 2023, https://arxiv.org/abs/2306.05685, section 3.4) therefore asks twice,
swapping the two answers, and declares a winner only when both orders agree, a tie otherwise.
This judge does the same with its own prompt (prefloop's wording, below): the model answers with
one letter first (``A``, ``B``, or ``C`` for "equally good"), then one sentence of reason.

Per order, the judge reads the probability of each letter at the first generated position
(renormalised over the three letters; :mod:`prefloop.judge.ratings`), or the letter the reply
starts with when the backend gives no log-probabilities. With ``P_AB`` the reading of the order
(a, b) and ``P_BA`` of the order (b, a):

- ``probability_a = ((P_AB[A] + P_AB[C] / 2) + (P_BA[B] + P_BA[C] / 2)) / 2``: the chance ``a``
  is better, averaged over both positions (a tie counts half);
- ``tie`` when the two orders' most likely letters do not name the same response (they
  disagree, or one says ``C``); the winner of a tie follows the tie policy, else it is the
  response both orders prefer.

Each order is one cached request, keyed by (judge configuration, prompt, first response, second
response), so the unordered pair costs two requests once, whatever order the rule picked it in.
"""

from __future__ import annotations

from typing import Any

from prefloop.judge.asks import Ask, reading_of, run_asks
from prefloop.judge.base import NO_USAGE, Judgement, JudgeRequest, JudgeUsage, failed_judgement
from prefloop.judge.cache import CachingJudge, JudgementCache, cache_key
from prefloop.judge.decision import ScoreDecision
from prefloop.judge.llm_backends import Conversation, JudgeLLM

VERDICT_LABELS = ("A", "B", "C")

PAIRWISE_SYSTEM_PROMPT = (
    "You are an impartial judge. You compare two AI assistant responses to the same "
    "instructions and decide which one is better overall: which follows the instructions more "
    "fully, is more honest about its uncertainty, more truthful (no fabricated facts) and more "
    "helpful. The order in which the responses are shown, their length and the names of the "
    "assistants must not influence you.\n"
    "Answer in exactly this format: the first line is a single letter, A if Response A is "
    "better, B if Response B is better, or C if they are equally good. The second line is one "
    "sentence giving the main reason."
)
"""prefloop's own text (not copied from elsewhere)."""

PAIRWISE_USER_TEMPLATE = (
    "<INSTRUCTIONS>{prompt}</INSTRUCTIONS>\n\n"
    "<RESPONSE_A>{first}</RESPONSE_A>\n\n"
    "<RESPONSE_B>{second}</RESPONSE_B>"
)


def pairwise_messages(prompt: str, first: str, second: str) -> Conversation:
    """The conversation asking which of ``first`` (shown as A) and ``second`` (B) is better."""
    user = (
        PAIRWISE_USER_TEMPLATE.replace("{prompt}", prompt, 1)
        .replace("{first}", "\x00first\x00", 1)
        .replace("{second}", "\x00second\x00", 1)
    )
    before, _, rest = user.partition("\x00first\x00")
    middle, _, after = rest.partition("\x00second\x00")
    return (
        {"role": "system", "content": PAIRWISE_SYSTEM_PROMPT},
        {"role": "user", "content": before + first + middle + second + after},
    )


def _reason(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()[1:] if line.strip()]
    return lines[0] if lines else ""


class PairwiseJudge(CachingJudge):
    """A :class:`~prefloop.judge.base.Judge` comparing the two responses directly (see module doc).

    Args:
        llm: the judge model (an endpoint or a local model).
        config_key: fingerprint of the judge configuration (keys the cache).
        seed: the run's judge seed (seeds sampled decoding and the tie coin).
        decision: supplies the tie policy (its other settings are for pointwise judges).
        cache: where answers are kept (default: in memory only).
        name: recorded as the ``judge`` of every pair.
    """

    def __init__(
        self,
        *,
        llm: JudgeLLM,
        config_key: str,
        seed: int = 0,
        decision: ScoreDecision | None = None,
        cache: JudgementCache | None = None,
        name: str = "pairwise",
    ) -> None:
        self.llm = llm
        super().__init__(
            config_key=config_key, seed=seed, decision=decision, cache=cache, name=name
        )

    def __repr__(self) -> str:
        return f"PairwiseJudge(llm={self.llm!r}, name={self.name!r})"

    def _key(self, prompt: str, first: str, second: str) -> str:
        return cache_key(self.config_key, "pairwise", prompt, first, second)

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        """One judgement per request, in order; failed pairs carry ``failure``."""
        asks = []
        for owner, request in enumerate(requests):
            prompt = request.item.prompt_text()
            for first, second in ((request.a, request.b), (request.b, request.a)):
                key = self._key(prompt, first.text, second.text)
                asks.append(Ask(key, pairwise_messages(prompt, first.text, second.text), owner))
        results = run_asks(self.llm, self.cache, asks, labels=VERDICT_LABELS, seed=self.seed)
        out = []
        for owner, request in enumerate(requests):
            usage = results.usage.get(owner, NO_USAGE)
            prompt = request.item.prompt_text()
            keys = (
                self._key(prompt, request.a.text, request.b.text),
                self._key(prompt, request.b.text, request.a.text),
            )
            failed = [k for k in keys if k in results.failures]
            if failed:
                reason = f"pair {request.pair_id}: no verdict ({results.failures[failed[0]]})"
                out.append(failed_judgement(request.pair_id, reason, usage))
                continue
            ab, ba = (results.answers[k] for k in keys)
            out.append(self._verdict(request, ab, ba, usage))
        return out

    def _verdict(
        self, request: JudgeRequest, ab: dict[str, Any], ba: dict[str, Any], usage: JudgeUsage
    ) -> Judgement:
        read_ab, read_ba = reading_of(ab), reading_of(ba)
        pa_ab, pb_ab, pc_ab = read_ab.probabilities
        pa_ba, pb_ba, pc_ba = read_ba.probabilities
        probability_a = ((pa_ab + pc_ab / 2) + (pb_ba + pc_ba / 2)) / 2
        a_by_ab = {0: "a", 1: "b", 2: "tie"}[read_ab.argmax()]
        a_by_ba = {0: "b", 1: "a", 2: "tie"}[read_ba.argmax()]
        tie = a_by_ab != a_by_ba or a_by_ab == "tie"
        winner = self.decision.tie_winner(request) if tie else (0 if a_by_ab == "a" else 1)
        names = {"a": request.a.model, "b": request.b.model, "tie": "a tie"}
        rationale = (
            f"pairwise, both orders: {request.a.model} shown first -> {names[a_by_ab]}"
            f" ({_reason(str(ab['text'])) or 'no reason given'}); {request.b.model} shown "
            f"first -> {names[a_by_ba]} ({_reason(str(ba['text'])) or 'no reason given'})"
        )
        return Judgement(
            pair_id=request.pair_id,
            winner=winner,
            probability_a=probability_a,
            tie=tie,
            rationale=rationale,
            aspects={
                "ab.a": pa_ab,
                "ab.b": pb_ab,
                "ab.tie": pc_ab,
                "ba.a": pb_ba,
                "ba.b": pa_ba,
                "ba.tie": pc_ba,
            },
            usage=usage,
        )
