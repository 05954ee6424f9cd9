"""DeltaQwen's model ranking in the bench: given by the user, or bought with judge calls.

DeltaQwen labels "the stronger model's answer beats the weaker model's" without a judge, so it
needs a ranking of the models. The ActiveUltraFeedback baseline takes it from model size (prior
knowledge: Qwen3-32B over Qwen3-0.6B). A bench must not take it from the judge scores of the
training pool: that is judge information the method never paid for, and it would make DeltaQwen
look label-free while it read every label of the pool.

So the bench ranks the models either from a ranking the user gives (``--model-ranking``, free:
prior knowledge) or from judge calls the run pays for: ``n_calls`` seeded random pairs of
distinct texts from the run's own training prompts, labelled by the run's judge, each model
ranked by its smoothed win rate ``(wins + 1) / (games + 2)`` (a model never judged sits at 0.5).
The calls are counted on DeltaQwen's judge-call axis.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from prefloop.data.records import PromptItem
from prefloop.engine.selection import pair_id
from prefloop.judge.base import Judge, JudgeRequest


class RankingError(ValueError):
    """No ranking can be bought from these prompts (no prompt with two distinct answers)."""


def paid_model_ranking(
    items: list[PromptItem], judge: Judge, *, run_name: str, n_calls: int, seed: int
) -> list[str]:
    """Every model of ``items``, strongest first, ranked from ``n_calls`` judged random pairs.

    Why: DeltaQwen's ranking must come from labels its run paid for, not from the pool's stored
    scores. Pairs are drawn from the prompts in order (one per prompt, cycling if ``n_calls`` is
    larger), two distinct texts each, with a generator seeded by ``seed``; ties count as no win.
    """
    if n_calls < 1:
        raise RankingError(f"n_calls must be >= 1, got {n_calls}")
    candidates = [it for it in items if len({r.text for r in it.responses}) >= 2]
    if not candidates:
        raise RankingError("no prompt has two distinct answers to judge; give --model-ranking")
    rng = np.random.default_rng(seed)
    requests = []
    for k in range(n_calls):
        item = candidates[k % len(candidates)]
        i, j = rng.choice(len(item.responses), size=2, replace=False)
        while item.responses[i].text == item.responses[j].text:
            i, j = rng.choice(len(item.responses), size=2, replace=False)
        a, b = item.responses[int(i)], item.responses[int(j)]
        requests.append(JudgeRequest(pair_id(run_name, item, a, b), item, a, b))
    wins: dict[str, int] = defaultdict(int)
    games: dict[str, int] = defaultdict(int)
    for request, verdict in zip(requests, judge.judge(requests), strict=True):
        games[request.a.model] += 1
        games[request.b.model] += 1
        if not verdict.tie:
            wins[(request.a if verdict.winner == 0 else request.b).model] += 1
    models = sorted({r.model for it in items for r in it.responses})
    rate = {m: (wins[m] + 1) / (games[m] + 2) for m in models}
    return sorted(models, key=lambda m: (-rate[m], m))
