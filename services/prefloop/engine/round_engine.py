"""The round engine: batches, budget, the five steps, a checkpoint after every round.

One round over a batch of prompts:

1. generation: the pool answers every prompt (or the stored responses are used);
2. reward: the uncertainty-aware reward model scores every response;
3. acquisition: a rule picks the pair(s) worth judging among responses with distinct texts
   (``distinct_texts.py``), cut to the budgets the way the rule declares (``budget.py``);
4. judge: the judge labels them; a pair already judged in this run is never sent again;
5. trainer: the reward model trains on the new labels and publishes a new version;

then held-out evaluation, metrics, and an atomic checkpoint. The engine talks to the roles only
through ``roles.py``, so the same code drives local objects or gRPC clients.

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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
from prefloop.engine.roles import (
    AcquisitionRole,
    GenerationRole,
    JudgeRole,
    RewardRole,
    TrainerRole,
)
from prefloop.engine.selection import (
    RoundRule,
    cut_to_budget,
    pair_id,
    select_distinct,
    selection_pair_ids,
)
from prefloop.generation.base import generation_metrics
from prefloop.judge.base import Judgement, JudgeRequest, response_key
from prefloop.spec import ActiveRun

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
        while not (reason := self._stop_reason(state)):
            rows.extend(self.run_one_round(state))
            save_checkpoint(
                self.run_dir, state, rows, self._save_trainer, self.run.spec.output.keep_checkpoints
            )
            if self.on_round is not None:
                self.on_round(state.metrics[-1])
        state.finished = True
        state.stop_reason = reason
        return RunResult(self.run_dir, rows, state, self.heldout)

    def run_one_round(self, state: RunState) -> list[dict[str, Any]]:
        """One round: the five steps, evaluation and metrics; mutates ``state``."""
        spec = self.run.spec
        r = state.round
        timings: dict[str, float] = {}
        batch_items = self.pool[state.prompt_offset : state.prompt_offset + spec.batch_size]

        t = time.perf_counter()
        items = self.roles.generation.generate(
            list(batch_items), seed=derive_seed(spec.seed, r, "generation")
        )
        timings["generation"] = time.perf_counter() - t

        t = time.perf_counter()
        batch = ScoredBatch.from_items(items)
        scores = self.roles.reward.score(list(items), batch.mask)
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
        )
        left = self.remaining(state)
        sel, distinct = select_distinct(
            self.roles.acquisition, round_rule, items, batch, scores, left
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
        pairs = self._label(state, items, sel, rule)
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
        state.model_version = train.model_version
        keep = [p for p in pairs if self._enters_dataset(p.label_source)]
        state.pairs_used += len(keep)
        metrics = self._metrics(state, items, pairs, keep, sel, scores.timings, train.metrics)
        metrics.update(distinct)
        metrics.update(generation_metrics(items))
        metrics["annotations_this_round"] = state.annotations_used - annotations_before
        metrics["pairs_this_round"] = len(keep)
        metrics["acquisition_method"] = rule.name
        metrics["budget_truncated"] = int(sel.info.get("budget_truncated", 0))
        metrics["warmup"] = warmup
        metrics.update({f"heldout_{k}": v for k, v in evaluation.items()})
        metrics.update({f"{k}_seconds": v for k, v in timings.items()})
        metrics["round_seconds"] = sum(timings.values())
        state.metrics.append(metrics)
        return [p.to_row() for p in keep]

    # -- steps ----------------------------------------------------------------------------------
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

    def _label(
        self, state: RunState, items: list[PromptItem], sel: Selection, rule: RuleInfo
    ) -> list[PreferencePair]:
        """Ask the judge about new pairs (never twice), apply self-labels, build the pairs."""
        name = self.run.metadata.name
        requests: list[JudgeRequest] = []
        requested: set[str] = set()
        planned: list[tuple[int, int, int, int, str]] = []
        for row in range(sel.size):
            item = items[int(sel.prompt_index[row])]
            i, j = int(sel.first[row]), int(sel.second[row])
            pid = pair_id(name, item, item.responses[i], item.responses[j])
            planned.append((int(sel.prompt_index[row]), i, j, int(sel.pseudo_label[row]), pid))
            if sel.pseudo_label[row] == 0 and pid not in state.judged and pid not in requested:
                requested.add(pid)
                requests.append(JudgeRequest(pid, item, item.responses[i], item.responses[j]))
        if requests:
            verdicts = self.roles.judge.judge(requests)
            for req, verdict in zip(requests, verdicts, strict=True):
                state.judged[req.pair_id] = _judgement_dict(req, verdict)
            state.annotations_used += len(requests)
        pairs = []
        seen: set[str] = set()
        source: LabelSource
        for p_idx, i, j, pseudo, pid in planned:
            if pid in seen:
                continue
            seen.add(pid)
            item = items[p_idx]
            if pseudo == 0:
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
            pairs.append(
                PreferencePair(
                    pair_id=pid,
                    run=name,
                    round=state.round,
                    prompt_id=item.prompt_id,
                    prompt=item.prompt,
                    chosen=item.responses[ci],
                    rejected=item.responses[ri],
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

    def _metrics(
        self,
        state: RunState,
        items: list[PromptItem],
        pairs: list[PreferencePair],
        kept: list[PreferencePair],
        sel: Selection,
        reward_timings: dict[str, float],
        train_metrics: dict[str, float],
    ) -> dict[str, Any]:
        judged = [p for p in pairs if p.label_source == "judge"]
        gaps = [
            p.chosen.score - p.rejected.score
            for p in kept
            if p.chosen.score is not None and p.rejected.score is not None
        ]
        agree = [
            (p.chosen.score >= p.rejected.score)
            for p in judged
            if p.chosen.score is not None and p.rejected.score is not None
        ]
        chosen_scores = [p.chosen.score for p in kept if p.chosen.score is not None]
        m: dict[str, Any] = {
            "round": state.round,
            "prompts": len(items),
            "prompts_done": state.prompt_offset,
            "pairs_selected": sel.size,
            "pairs_judged": len(judged),
            "pairs_self_labelled": len(pairs) - len(judged),
            "pairs_in_dataset": len(kept),
            "annotations_used": state.annotations_used,
            "pairs_used": state.pairs_used,
            "model_version": state.model_version,
            "mean_score_gap": float(np.mean(gaps)) if gaps else float("nan"),
            "mean_chosen_score": float(np.mean(chosen_scores)) if chosen_scores else float("nan"),
            "label_agreement": float(np.mean(agree)) if agree else float("nan"),
            "ties": sum(p.tie for p in judged),
        }
        m.update({k: float(v) for k, v in reward_timings.items()})
        m.update(
            {f"train_{k}" if not k.startswith("train") else k: v for k, v in train_metrics.items()}
        )
        return m


def _judgement_dict(req: JudgeRequest, j: Judgement) -> dict[str, Any]:
    """A judgement stored order-free: who won (by response key), with what probability."""
    if j.pair_id != req.pair_id:
        raise RuntimeError(f"judge answered pair {j.pair_id} for request {req.pair_id}")
    winner = req.a if j.winner == 0 else req.b
    p_a = float(j.probability_a)
    return {
        "winner_key": response_key(winner),
        "probability_winner": p_a if j.winner == 0 else 1.0 - p_a,
        "score_a": j.score_a,
        "score_b": j.score_b,
        "tie": bool(j.tie),
        "rationale": j.rationale,
    }
