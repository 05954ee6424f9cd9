"""StoredScoreOracle: deterministic wins, ties, Bradley-Terry sampling, missing scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from prefloop.data.readers import load_prompt_items
from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import JudgeError, JudgeRequest, response_key
from prefloop.judge.oracle import StoredScoreOracle, bradley_terry_probability

SHIPPED = Path(__file__).resolve().parents[2] / "data"


def request(score_a: float | None, score_b: float | None, pair_id: str = "pair") -> JudgeRequest:
    a = Response("model-a", "answer a", score_a)
    b = Response("model-b", "answer b", score_b)
    return JudgeRequest(pair_id, PromptItem("prompt-7", "q", (a, b)), a, b)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def test_deterministic_higher_score_wins_in_either_order() -> None:
    oracle = StoredScoreOracle()
    first, second = oracle.judge([request(0.8, 0.3, "x"), request(0.3, 0.8, "y")])
    assert (first.winner, first.probability_a, first.tie) == (0, 1.0, False)
    assert (second.winner, second.probability_a, second.tie) == (1, 0.0, False)
    assert (first.score_a, first.score_b) == (0.8, 0.3)
    assert (first.pair_id, second.pair_id) == ("x", "y")


def test_identity_transform_accepts_rating_scales() -> None:
    oracle = StoredScoreOracle(score_transform="identity")
    (j,) = oracle.judge([request(2.5, 4.75)])
    assert j.winner == 1


def test_tie_first_is_the_first_response_in_canonical_order() -> None:
    """``first`` is order-free: the response with the smaller stable id wins a tie."""
    oracle = StoredScoreOracle(tie_policy="first")
    reqs = [request(0.4, 0.4, f"t{i}") for i in range(50)]
    canonical_first = min(reqs[0].a, reqs[0].b, key=response_key)
    for r, j in zip(reqs, oracle.judge(reqs), strict=True):
        assert j.tie and j.probability_a == 0.5
        assert (r.a if j.winner == 0 else r.b) == canonical_first
    swapped = [JudgeRequest(r.pair_id, r.item, r.b, r.a) for r in reqs]
    for r, j in zip(swapped, oracle.judge(swapped), strict=True):
        assert (r.a if j.winner == 0 else r.b) == canonical_first


def test_tie_random_is_a_seeded_fair_coin() -> None:
    reqs = [request(0.4, 0.4, f"t{i}") for i in range(2000)]
    oracle = StoredScoreOracle(tie_policy="random", seed=3)
    winners = np.array([j.winner for j in oracle.judge(reqs)])
    assert all(j.tie for j in oracle.judge(reqs[:10]))
    assert abs(winners.mean() - 0.5) < 0.05
    again = np.array([j.winner for j in StoredScoreOracle(tie_policy="random", seed=3).judge(reqs)])
    other = np.array([j.winner for j in StoredScoreOracle(tie_policy="random", seed=4).judge(reqs)])
    assert np.array_equal(winners, again)
    assert not np.array_equal(winners, other)


def test_bradley_terry_frequencies_match_the_sigmoid() -> None:
    n = 4000
    cases = [(0.7, 0.4, 1.0), (0.05, 0.2, 1.0), (0.9, 0.5, 2.0), (0.5, 0.5, 1.0)]
    for score_a, score_b, temperature in cases:
        oracle = StoredScoreOracle(mode="bradley_terry", temperature=temperature, seed=11)
        judgements = oracle.judge([request(score_a, score_b, f"bt{i}") for i in range(n)])
        expected = sigmoid((logit(score_a) - logit(score_b)) / temperature)
        assert judgements[0].probability_a == pytest.approx(expected)
        freq = np.mean([j.winner == 0 for j in judgements])
        tolerance = 4 * math.sqrt(expected * (1 - expected) / n)
        assert abs(freq - expected) < tolerance, (score_a, score_b, freq, expected)


def test_bradley_terry_identity_transform() -> None:
    n = 4000
    oracle = StoredScoreOracle(mode="bradley_terry", score_transform="identity", temperature=2.0)
    judgements = oracle.judge([request(4.0, 3.0, f"r{i}") for i in range(n)])
    expected = sigmoid(0.5)
    assert judgements[0].probability_a == pytest.approx(expected)
    assert abs(np.mean([j.winner == 0 for j in judgements]) - expected) < 4 * math.sqrt(0.25 / n)


def test_bradley_terry_label_depends_only_on_seed_and_pair_id() -> None:
    reqs = [request(0.6, 0.5, f"p{i}") for i in range(300)]
    oracle = StoredScoreOracle(mode="bradley_terry", seed=5)
    batch = {j.pair_id: j.winner for j in oracle.judge(reqs)}
    reversed_batch = {j.pair_id: j.winner for j in oracle.judge(list(reversed(reqs)))}
    one_by_one = {r.pair_id: oracle.judge([r])[0].winner for r in reqs[::7]}
    fresh = {
        j.pair_id: j.winner for j in StoredScoreOracle(mode="bradley_terry", seed=5).judge(reqs)
    }
    assert batch == reversed_batch == fresh
    assert all(batch[k] == v for k, v in one_by_one.items())
    other_seed = {
        j.pair_id: j.winner for j in StoredScoreOracle(mode="bradley_terry", seed=6).judge(reqs)
    }
    assert other_seed != batch


def test_bradley_terry_probability_is_vectorised_clipped_and_symmetric() -> None:
    a = np.array([0.0, 1.0, 0.3, 0.999999])
    b = np.array([1.0, 0.0, 0.6, 0.5])
    p = bradley_terry_probability(a, b, clip=1e-4)
    q = bradley_terry_probability(b, a, clip=1e-4)
    assert p.shape == (4,)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p + q, 1.0)
    assert p[0] == pytest.approx(sigmoid(logit(1e-4) - logit(1 - 1e-4)))
    assert p[3] == pytest.approx(sigmoid(logit(1 - 1e-4)))


@pytest.mark.parametrize(
    ("missing", "says"), [(None, "has no stored score"), (float("nan"), "has a NaN score")]
)
@pytest.mark.parametrize("mode", ["deterministic", "bradley_terry"])
def test_missing_score_names_prompt_and_model(missing: float | None, says: str, mode: str) -> None:
    oracle = StoredScoreOracle(mode=mode)  # type: ignore[arg-type]
    with pytest.raises(
        JudgeError, match=rf"prompt 'prompt-7', response b by model 'model-b' {says}"
    ):
        oracle.judge([request(0.5, missing)])


def test_logit_transform_refuses_scores_outside_unit_interval() -> None:
    with pytest.raises(
        JudgeError, match=r"model 'model-a' has score 3.5 outside \[0, 1\].*identity"
    ):
        StoredScoreOracle().judge([request(3.5, 0.2)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "argmax"}, "mode must be one of"),
        ({"tie_policy": "last"}, "tie_policy must be one of"),
        ({"score_transform": "log"}, "score_transform must be one of"),
        ({"temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"temperature": float("inf")}, "temperature must be a finite number > 0"),
        ({"clip": 0.5}, r"clip must be a number in \(0, 0.5\)"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"seed": 1.5}, "seed must be an integer >= 0"),
        ({"name": ""}, "name must be a non-empty string"),
    ],
)
def test_parameter_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StoredScoreOracle(**kwargs)  # type: ignore[arg-type]


def test_oracle_recovers_human_labels_of_the_shipped_pair_pool() -> None:
    items = load_prompt_items(SHIPPED / "hh_rlhf" / "harmless_dev.jsonl", limit=200)
    oracle = StoredScoreOracle(name="hh-oracle")
    reqs = [
        JudgeRequest(f"hh-{it.prompt_id}", it, it.responses[0], it.responses[1]) for it in items
    ]
    judgements = oracle.judge(reqs)
    for item, judgement in zip(items, judgements, strict=True):
        winner = item.responses[judgement.winner]
        assert winner.score == 1.0
    assert oracle.name == "hh-oracle"
    assert {j.winner for j in judgements} == {0, 1}


def test_deterministic_oracle_agrees_with_argmax_on_alpacaeval() -> None:
    items = load_prompt_items(SHIPPED / "alpacaeval" / "sample100.jsonl", limit=5)
    oracle = StoredScoreOracle()
    for item in items:
        scores = [r.score for r in item.responses]
        reqs = [
            JudgeRequest(f"{item.prompt_id}-{i}-{j}", item, item.responses[i], item.responses[j])
            for i in range(16)
            for j in range(16)
            if i != j
        ]
        wins = np.zeros(16)
        for req, judgement in zip(reqs, oracle.judge(reqs), strict=True):
            wins[item.responses.index(req.b if judgement.winner else req.a)] += 1
        assert scores[int(np.argmax(wins))] == max(scores)


def _pair_requests(n: int, seed: int) -> tuple[list[JudgeRequest], list[JudgeRequest]]:
    """``n`` pairs with scores on a 7-level grid (about one pair in seven tied), both orders.

    The pair id is the same in both orders, as the engine's order-free pair id is.
    """
    rng = np.random.default_rng(seed)
    scores = rng.choice(np.linspace(0.05, 0.95, 7), size=(n, 2))
    forward, swapped = [], []
    for i, (score_a, score_b) in enumerate(scores):
        a = Response(f"model-{i % 5}", f"answer a {i}", float(score_a))
        b = Response(f"model-{(i + 1) % 5}", f"answer b {i}", float(score_b))
        item = PromptItem(f"prompt-{i}", "q", (a, b))
        forward.append(JudgeRequest(f"pair-{i}", item, a, b))
        swapped.append(JudgeRequest(f"pair-{i}", item, b, a))
    return forward, swapped


@pytest.mark.parametrize("tie_policy", ["first", "random"])
@pytest.mark.parametrize("mode", ["deterministic", "bradley_terry"])
def test_swapping_every_pair_keeps_its_winner(mode: str, tie_policy: str) -> None:
    """Issue 7 item 2: the label of a pair never depends on which response is shown first."""
    forward, swapped = _pair_requests(2000, seed=17)
    oracle = StoredScoreOracle(mode=mode, tie_policy=tie_policy, seed=9)  # type: ignore[arg-type]
    verdicts = oracle.judge(forward)
    verdicts_swapped = oracle.judge(swapped)
    winners = [r.a if j.winner == 0 else r.b for r, j in zip(forward, verdicts, strict=True)]
    winners_swapped = [
        r.a if j.winner == 0 else r.b for r, j in zip(swapped, verdicts_swapped, strict=True)
    ]
    assert winners == winners_swapped
    ties = [j.tie for j in verdicts]
    assert ties == [j.tie for j in verdicts_swapped]
    assert 150 < sum(ties) < 450  # the grid makes ties common enough to exercise the policy
    for j, js in zip(verdicts, verdicts_swapped, strict=True):
        assert j.probability_a == pytest.approx(1.0 - js.probability_a)
        assert (j.score_a, j.score_b) == (js.score_b, js.score_a)
    # both responses win sometimes in tied pairs: no policy reduces to "a always wins"
    tied_first = [w is r.a for w, r, t in zip(winners, forward, ties, strict=True) if t]
    assert 0 < sum(tied_first) < len(tied_first)
