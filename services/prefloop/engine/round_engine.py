"""The round engine: batches, budget, the five steps, a checkpoint after every round.

One round over a batch of prompts:

1. generation: the pool answers every prompt (or the stored responses are used);
2. reward: the uncertainty-aware reward model scores every response;
3. acquisition: a rule picks the pair(s) worth judging among responses with distinct texts
   (``distinct_texts.py``), cut to the budgets the way the rule declares (``budget.py``);
4. judge: the judge labels them; a pair already judged in this run is never sent again;
5. trainer: the reward model trains on the new labels and publishes a new version;

then held-out evaluation, the round's metrics (``round_metrics.py``), and an atomic checkpoint.
The engine talks to the roles only through ``roles.py``, so the same code drives local objects
or gRPC clients.

Two budgets stop a run (``spec.budget``): judge calls (``maxAnnotations``) and pairs in the
dataset (``maxPairs``, whatever labelled them); both are reported every round.

Warm-up of the BGPM head: the BGPM reference (``muhd-umer/b-gpm``) labels a seed set of random
pairs but scores its first acquisition batch with an untrained head. Here, with
``rewardModel.head.kind: bgpm``, round 0 is a warm-up round: the ``random`` rule picks the first
batch's pairs (seeded, judged and counted against both budgets like any pair), the head trains on
them, and the configured rule selects from round 1 on, with a head trained on the seed labels.

With a :class:`~prefloop.bus.publisher.RunPublisher` (service mode with ``kafka=``), each step's
output also goes to the run's topics: completions, scores, selections, and the labelled pairs on
the annotations topic *before* the trainer is called (the trainer service consumes them from
there). The embedded default publishes nothing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from prefloop.acquisition import Selection, get_rule
from prefloop.acquisition.registry import RuleInfo
from prefloop.bus.publisher import RunPublisher
from prefloop.data.records import (
    LabelSource,
    PreferencePair,
    PromptItem,
    ScoredBatch,
)
from prefloop.engine.budget import Remaining, remaining_budget
from prefloop.engine.checkpoint import RunState, derive_seed, load_checkpoint, save_checkpoint
from prefloop.engine.costs import add_totals, judge_usage
from prefloop.engine.judgements import (
    JudgeRetry,
    failure_record,
    judgement_record,
    request_of_failure,
    with_judge_score,
)
from prefloop.engine.roles import (
    AcquisitionRole,
    GenerationRole,
    JudgeRole,
    RewardRole,
    TrainerRole,
)
from prefloop.engine.round_metrics import RoundFacts, round_metrics
from prefloop.engine.selection import (
    RoundRule,
    cut_to_budget,
    pair_id,
    prompts_without_distinct_pair,
    select_distinct,
    selection_pair_ids,
)
from prefloop.engine.source_models import source_duels, source_scored
from prefloop.judge.base import Judgement, JudgeRequest, response_key
from prefloop.spec import ActiveRun
from prefloop.spec_human import carries_timed_out_pairs

log = logging.getLogger("prefloop.engine")

STEPS = ("generation", "reward", "acquisition", "judge", "training")
WARMUP_RULE = "random"
"""The rule of the BGPM head's warm-up round (the reference's seed set is random pairs)."""


class ResumeError(RuntimeError):
    """The run directory cannot be resumed with this manifest."""


@dataclass
class Roles:
    """The five roles one run is driven through."""

    generation: GenerationRole
    reward: RewardRole
    acquisition: AcquisitionRole
    judge: JudgeRole
    trainer: TrainerRole


@dataclass
class RunResult:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    rows: list[dict[str, Any]]
    state: RunState
    heldout: list[PromptItem] = field(default_factory=list)


def split_prompts(
    run: ActiveRun, items: list[PromptItem]
) -> tuple[list[PromptItem], list[PromptItem]]:
    """Shuffle with the run's seed, then set the held-out fraction aside (the tail)."""
    order = np.arange(len(items))
    if run.spec.prompts.shuffle:
        order = np.random.default_rng(derive_seed(run.spec.seed, -1, "shuffle")).permutation(
            len(items)
        )
    shuffled = [items[i] for i in order]
    n_held = math.floor(len(shuffled) * run.spec.evaluation.heldout_fraction)
    if n_held and len(shuffled) - n_held < 1:
        n_held = 0
    cut = len(shuffled) - n_held
    return shuffled[:cut], shuffled[cut:]


class RoundEngine:
    """Drives rounds until the budget or the prompts run out, checkpointing after each."""

    def __init__(
        self,
        run: ActiveRun,
        roles: Roles,
        run_dir: Path,
        pool: list[PromptItem],
        heldout: list[PromptItem],
        on_round: Callable[[dict[str, Any]], None] | None = None,
        save_trainer: Callable[[Path], None] | None = None,
        publisher: RunPublisher | None = None,
    ) -> None:
        self.run = run
        self.roles = roles
        self.run_dir = run_dir
        self.pool = pool
        self.heldout = heldout
        self.on_round = on_round
        self._save_trainer = save_trainer or roles.trainer.save_state
        self.rule = get_rule(run.spec.acquisition.method)
        self.publisher = publisher
        self._round_verdicts: list[Judgement] = []
        self._carried: list[PreferencePair] = []
        """Failed pairs labelled again on resume, trained on (and written) with the next round."""
        self._stalled = False
        """Pool scope: a round retired no prompt from the pool (the rule picked none)."""

    # -- budget -------------------------------------------------------------------------------
    def remaining(self, state: RunState) -> Remaining:
        """Judge calls and dataset pairs the run may still spend."""
        b = self.run.spec.budget
        return remaining_budget(
            b.max_annotations, b.max_pairs, state.annotations_used, state.pairs_used
        )

    def _stop_reason(self, state: RunState) -> str:
        if state.prompt_offset >= len(self.pool):
            return "prompts exhausted"
        if self._stalled:
            return "no candidate prompt selected"
        if exhausted := self.remaining(state).exhausted:
            return exhausted
        mr = self.run.spec.budget.max_rounds
        if mr is not None and state.round >= mr:
            return "round budget exhausted"
        return ""

    # -- run ----------------------------------------------------------------------------------
    def start(self, resume: bool) -> tuple[RunState, list[dict[str, Any]]]:
        """A fresh state, or the latest checkpoint's when resuming."""
        loaded = load_checkpoint(self.run_dir) if resume else None
        if loaded is None:
            if resume:
                raise ResumeError(f"{self.run_dir}: no checkpoint to resume from")
            return RunState(fingerprint=self.run.fingerprint()), []
        state, rows, trainer_dir = loaded
        if state.fingerprint != self.run.fingerprint():
            raise ResumeError(
                f"{self.run_dir}: the checkpoint was written by a different configuration "
                f"(fingerprint {state.fingerprint} != {self.run.fingerprint()}); only budget and "
                "output may change on resume. Use a new output.dir for a new run."
            )
        self.roles.trainer.load_state(trainer_dir)
        state.pairs_used = len(rows)  # checkpoints written before maxPairs existed lack it
        state.finished = False
        state.stop_reason = ""
        return state, rows

    def run_rounds(self, resume: bool = False) -> RunResult:
        """Run to completion (or until a budget stops it)."""
        state, rows = self.start(resume)
        # a human judge that carries its failures asks them with the next round's pairs (one
        # wait for people); with no round left, or any other judge, they are asked now
        carried_by_round = carries_timed_out_pairs(self.run) and not self._stop_reason(state)
        if resume and state.judge_failures and not carried_by_round:
            self._carried = self.retry_failed_pairs(state)
        while not (reason := self._stop_reason(state)):
            rows.extend(self.run_one_round(state))
            save_checkpoint(
                self.run_dir, state, rows, self._save_trainer, self.run.spec.output.keep_checkpoints
            )
            if self.on_round is not None:
                self.on_round(state.metrics[-1])
        if self._carried:  # pairs labelled on resume with no round left to carry them
            keep = [p for p in self._carried if self._enters_dataset(p.label_source)]
            rows.extend(p.to_row() for p in keep)
            state.pairs_used += len(keep)
            self._carried = []
            save_checkpoint(
                self.run_dir, state, rows, self._save_trainer, self.run.spec.output.keep_checkpoints
            )
        state.finished = True
        state.stop_reason = reason
        return RunResult(self.run_dir, rows, state, self.heldout)

    def run_one_round(self, state: RunState) -> list[dict[str, Any]]:
        """One round: the five steps, evaluation and metrics; mutates ``state``."""
        spec = self.run.spec
        r = state.round
        timings: dict[str, float] = {}
        batch_items = self.round_prompts(state)
        pool_scope = spec.acquisition.scope == "pool"

        t = time.perf_counter()
        items = self.roles.generation.generate(
            list(batch_items), seed=derive_seed(spec.seed, r, "generation")
        )
        timings["generation"] = time.perf_counter() - t

        t = time.perf_counter()
        batch = ScoredBatch.from_items(items)
        scores = self.roles.reward.score(list(items), batch.mask)
        if spec.reward_model.source_models.enabled:
            scores = source_scored(spec, state, items, batch.mask, scores)
        timings["reward"] = time.perf_counter() - t
        prompt_ids = [it.prompt_id for it in items]
        if self.publisher is not None:
            t = time.perf_counter()
            self.publisher.completions(r, items)
            self.publisher.scores(
                r, prompt_ids, scores.mean, scores.std, model_version=scores.model_version
            )
            timings["publish"] = time.perf_counter() - t

        t = time.perf_counter()
        warmup = self.is_warmup(state)
        annotations_before = state.annotations_used
        rule = self.round_rule(state)
        round_rule = RoundRule(
            info=rule,
            params={} if warmup else dict(spec.acquisition.params),
            pairs_per_prompt=spec.pairs_per_prompt,
            acquisition_seed=derive_seed(spec.seed, r, "acquisition"),
            truncation_seed=derive_seed(spec.seed, r, "truncation"),
            scope=spec.acquisition.scope,
            prompts_per_round=spec.batch_size,
            diversity=spec.acquisition.diversity,
            pool_seed=derive_seed(spec.seed, r, "pool"),
            pool_warmup=r == 0,
        )
        carried = self._carried_requests(state)
        left = self.remaining(state)
        left = replace(
            left,
            annotations=left.annotations - len(carried.requests),
            pairs=left.pairs - len(carried.requests),
        )
        # carried pairs may have reserved all that is left: the rule still selects (a batch
        # rule needs max_pairs >= 1) and the cut below keeps what the budget affords
        at_least_one = replace(left, annotations=max(1, left.annotations), pairs=max(1, left.pairs))
        sel, distinct = select_distinct(
            self.roles.acquisition, round_rule, items, batch, scores, at_least_one
        )
        sel = cut_to_budget(
            sel,
            selection_pair_ids(self.run.metadata.name, items, sel),
            state.judged,
            round_rule,
            self._enters_dataset(self._self_label_source(rule)),
            left,
        )
        timings["acquisition"] = time.perf_counter() - t

        t = time.perf_counter()
        pairs = [*self._carried, *self._label(state, items, sel, rule, carried)]
        self._carried = []
        timings["judge"] = time.perf_counter() - t
        if self.publisher is not None:
            t = time.perf_counter()
            self.publisher.selections(
                r,
                prompt_ids,
                sel,
                method=rule.name,
                pair_ids=selection_pair_ids(self.run.metadata.name, items, sel),
            )
            self.publisher.labelled_pairs(r, pairs)
            timings["publish"] += time.perf_counter() - t

        t = time.perf_counter()
        if pool_scope:
            pool_done = state.pool_done + self.leaving_pool(items, batch.mask, sel)
            self._stalled = len(pool_done) == len(state.pool_done)
            n_done = len(pool_done)
        else:
            n_done = min(len(self.pool), state.prompt_offset + len(batch_items))
        train = self.roles.trainer.train(
            pairs,
            round_index=r,
            n_done=n_done,
            n_total=len(self.pool),
            seed=derive_seed(spec.seed, r, "training"),
        )
        timings["training"] = time.perf_counter() - t

        t = time.perf_counter()
        evaluation = self.roles.reward.evaluate(self.heldout)
        timings["evaluation"] = time.perf_counter() - t

        state.round += 1
        state.prompt_offset = n_done
        if pool_scope:
            state.pool_done = pool_done
        state.model_version = train.model_version
        keep = [p for p in pairs if self._enters_dataset(p.label_source)]
        state.pairs_used += len(keep)
        if spec.reward_model.source_models.enabled:  # only they read it: keep checkpoints lean
            state.source_duels.extend(source_duels(keep))
        facts = RoundFacts(
            items=items,
            pairs=pairs,
            kept=keep,
            selection=sel,
            distinct=distinct,
            reward_seconds=scores.timings,
            train_metrics=train.metrics,
            verdicts=self._round_verdicts,
            judge_failures_pending=len(state.judge_failures),
            annotations_before=annotations_before,
            method=rule.name,
            warmup=warmup,
            evaluation=evaluation,
            step_seconds=timings,
        )
        metrics = round_metrics(self.run, state, facts, self.roles.judge)
        if pool_scope:
            metrics["candidate_prompts"] = len(items)
        state.metrics.append(metrics)
        return [p.to_row() for p in keep]

    # -- steps ----------------------------------------------------------------------------------
    def round_prompts(self, state: RunState) -> list[PromptItem]:
        """The prompts of this round: the next batch, or (pool scope) the candidate pool.

        Why: in pool scope the rule ranks up to ``candidatePoolSize`` not-yet-labelled prompts
        (the first ones of the shuffled pool); held-out prompts are never in ``self.pool``.
        """
        spec = self.run.spec
        if spec.acquisition.scope != "pool":
            return self.pool[state.prompt_offset : state.prompt_offset + spec.batch_size]
        done = set(state.pool_done)
        candidates = [it for it in self.pool if it.prompt_id not in done]
        size = spec.acquisition.candidate_pool_size
        return candidates[:size] if size else candidates

    @staticmethod
    def leaving_pool(items: list[PromptItem], mask: np.ndarray, sel: Selection) -> list[str]:
        """Pool scope: ids of the candidates that leave the pool this round, in pool order:
        those with a selected pair and those with nothing to pair."""
        leaving = prompts_without_distinct_pair(items, mask)
        leaving[sel.prompt_index] = True
        return [it.prompt_id for it, out in zip(items, leaving, strict=True) if out]

    def is_warmup(self, state: RunState) -> bool:
        """Round 0 of a run with the BGPM head: random seed labels train the head first."""
        return state.round == 0 and self.run.spec.reward_model.head.kind == "bgpm"

    def round_rule(self, state: RunState) -> RuleInfo:
        """The rule of this round: the spec's, or ``random`` in the BGPM head's warm-up round."""
        return get_rule(WARMUP_RULE) if self.is_warmup(state) else self.rule

    def _enters_dataset(self, source: str) -> bool:
        """Pseudo-labelled pairs enter the dataset only with ``output.includePseudoLabels``."""
        return source != "pseudo" or self.run.spec.output.include_pseudo_labels

    @staticmethod
    def _self_label_source(rule: RuleInfo) -> LabelSource:
        """DeltaQwen's own labels are identity labels; any other rule's are pseudo-labels."""
        return "identity" if rule.name == "delta_qwen" else "pseudo"

    def _carried_requests(self, state: RunState) -> JudgeRetry:
        """The failed pairs a human judge with ``onTimeout: carry`` is asked again this round.

        Why: people who missed a round's timeout label its pairs in the next round of the same
        running process (with the round's new pairs, one wait), not only on ``--resume``; any
        other judge's failures wait for ``--resume`` (a failing API would fail again now). The
        pairs are taken within the budget, which they reserve before the rule selects.
        """
        if not carries_timed_out_pairs(self.run) or not state.judge_failures:
            return JudgeRetry()
        left = self.remaining(state)
        return self._failed_requests(state, max(0, min(left.annotations, left.pairs)))

    def _label(
        self,
        state: RunState,
        items: list[PromptItem],
        sel: Selection,
        rule: RuleInfo,
        carried: JudgeRetry | None = None,
    ) -> list[PreferencePair]:
        """Ask the judge about new pairs (never twice) and the ``carried`` ones in one call,
        apply self-labels, build the pairs (carried ones first)."""
        name = self.run.metadata.name
        carried = carried or JudgeRetry()
        requests: list[JudgeRequest] = list(carried.requests)
        requested: dict[str, tuple[int, int]] = dict(carried.indices)
        planned: list[tuple[int, int, int, int, str]] = []
        for row in range(sel.size):
            item = items[int(sel.prompt_index[row])]
            i, j = int(sel.first[row]), int(sel.second[row])
            pid = pair_id(name, item, item.responses[i], item.responses[j])
            planned.append((int(sel.prompt_index[row]), i, j, int(sel.pseudo_label[row]), pid))
            if sel.pseudo_label[row] == 0 and pid not in state.judged and pid not in requested:
                requested[pid] = (i, j)
                requests.append(JudgeRequest(pid, item, item.responses[i], item.responses[j]))
        self._round_verdicts = self._ask_judge(state, requests, requested, rule.name)
        n = len(carried.requests)
        pairs = self._retried_pairs(state, carried, self._round_verdicts[:n])
        seen: set[str] = set(carried.indices)  # a carried pair selected again is built once
        source: LabelSource
        for p_idx, i, j, pseudo, pid in planned:
            if pid in seen:
                continue
            seen.add(pid)
            item = items[p_idx]
            if pseudo == 0:
                if pid not in state.judged:  # the judge failed on it: recorded, not labelled
                    continue
                jd = state.judged[pid]
                first_wins = jd["winner_key"] == response_key(item.responses[i])
                prob_first = (
                    jd["probability_winner"] if first_wins else 1 - jd["probability_winner"]
                )
                source = "judge"
                tie, rationale = bool(jd["tie"]), jd.get("rationale")
            else:
                first_wins = pseudo > 0
                prob_first = 1.0 if first_wins else 0.0
                source = self._self_label_source(rule)
                tie, rationale = False, None
            ci, ri = (i, j) if first_wins else (j, i)
            scores = state.judged[pid].get("scores", {}) if source == "judge" else {}
            pairs.append(
                PreferencePair(
                    pair_id=pid,
                    run=name,
                    round=state.round,
                    prompt_id=item.prompt_id,
                    prompt=item.prompt,
                    chosen=with_judge_score(item.responses[ci], scores),
                    rejected=with_judge_score(item.responses[ri], scores),
                    chosen_index=ci,
                    rejected_index=ri,
                    acquisition=rule.name,
                    judge=self.roles.judge.name if source == "judge" else source,
                    probability_chosen=prob_first if first_wins else 1.0 - prob_first,
                    tie=tie,
                    label_source=source,
                    rationale=rationale,
                )
            )
        return pairs

    def _ask_judge(
        self,
        state: RunState,
        requests: list[JudgeRequest],
        indices: dict[str, tuple[int, int]],
        rule_name: str,
    ) -> list[Judgement]:
        """Judge ``requests``; record verdicts as judged and failures as failed (never labelled).

        A failed pair spends no annotation; it is kept with its request in
        ``state.judge_failures`` and asked again on ``--resume``.
        """
        if not requests:
            return []
        verdicts = self.roles.judge.judge(requests)
        for req, verdict in zip(requests, verdicts, strict=True):
            if verdict.failed:
                before = state.judge_failures.get(req.pair_id)
                if before is not None:  # asked again on resume: keep where it came from
                    before["reason"] = verdict.failure
                    continue
                i, j = indices[req.pair_id]
                state.judge_failures[req.pair_id] = failure_record(
                    req, verdict, i, j, state.round, rule_name
                )
                continue
            state.judge_failures.pop(req.pair_id, None)
            state.judged[req.pair_id] = judgement_record(req, verdict)
            state.annotations_used += 1
        failed = [v for v in verdicts if v.failed]
        if failed:
            log.warning(
                "judge: %d of %d pair(s) failed and are not labelled (asked again on --resume, "
                "or in the next round by a human judge that carries them); first: %s",
                len(failed),
                len(verdicts),
                failed[0].failure,
            )
        return verdicts

    def retry_failed_pairs(self, state: RunState) -> list[PreferencePair]:
        """Ask the judge again about the pairs it failed on (``--resume``), within the budget.

        The pairs it labels now are returned (they join the next round's labels); the rest stay
        recorded as failed. Their calls count in the run's cost totals.
        """
        left = self.remaining(state)
        retry = self._failed_requests(state, max(0, min(left.annotations, left.pairs)))
        verdicts = self._ask_judge(state, retry.requests, retry.indices, rule_name="")
        add_totals(state.usage_totals, judge_usage(verdicts))
        return self._retried_pairs(state, retry, verdicts)

    @staticmethod
    def _failed_requests(state: RunState, limit: int) -> JudgeRetry:
        """The first ``limit`` recorded failures as requests, with their indices and records."""
        retry = JudgeRetry()
        for pid, record in list(state.judge_failures.items())[:limit]:
            request, i, j = request_of_failure(pid, record)
            retry.requests.append(request)
            retry.indices[pid] = (i, j)
            retry.records[pid] = record
        return retry

    def _retried_pairs(
        self, state: RunState, retry: JudgeRetry, verdicts: list[Judgement]
    ) -> list[PreferencePair]:
        """The labelled pairs of failures asked again (in this round's number); failed ones
        stay recorded."""
        pairs = []
        for request, verdict in zip(retry.requests, verdicts, strict=True):
            if verdict.failed:
                continue
            i, j = retry.indices[request.pair_id]
            jd = state.judged[request.pair_id]
            a_wins = jd["winner_key"] == response_key(request.a)
            chosen, rejected = (request.a, request.b) if a_wins else (request.b, request.a)
            prob_a = jd["probability_winner"] if a_wins else 1 - jd["probability_winner"]
            pairs.append(
                PreferencePair(
                    pair_id=request.pair_id,
                    run=self.run.metadata.name,
                    round=state.round,
                    prompt_id=request.item.prompt_id,
                    prompt=request.item.prompt,
                    chosen=with_judge_score(chosen, jd.get("scores", {})),
                    rejected=with_judge_score(rejected, jd.get("scores", {})),
                    chosen_index=i if a_wins else j,
                    rejected_index=j if a_wins else i,
                    acquisition=retry.records[request.pair_id]["acquisition"],
                    judge=self.roles.judge.name,
                    probability_chosen=prob_a if a_wins else 1.0 - prob_a,
                    tie=bool(jd["tie"]),
                    label_source="judge",
                    rationale=jd.get("rationale"),
                )
            )
        return pairs
