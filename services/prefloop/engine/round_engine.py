"""The round engine: batches, budget, the five steps, a checkpoint after every round.

One round over a batch of prompts:

1. generation: the pool answers every prompt (or the stored responses are used);
2. reward: the uncertainty-aware reward model scores every response;
3. acquisition: a rule picks the pair(s) worth judging (within the annotation budget);
4. judge: the judge labels them; a pair already judged in this run is never sent again;
5. trainer: the reward model trains on the new labels and publishes a new version;

then held-out evaluation, metrics, and an atomic checkpoint. The engine talks to the roles only
through ``roles.py``, so the same code drives local objects or gRPC clients.

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

from prefloop.acquisition import AcquisitionInput, Selection, get_rule
from prefloop.bus.publisher import RunPublisher
from prefloop.data.records import (
    LabelSource,
    PreferencePair,
    PromptItem,
    Response,
    ScoredBatch,
    stable_id,
)
from prefloop.engine.checkpoint import RunState, derive_seed, load_checkpoint, save_checkpoint
from prefloop.engine.roles import (
    AcquisitionRole,
    GenerationRole,
    JudgeRole,
    RewardRole,
    TrainerRole,
)
from prefloop.judge.base import Judgement, JudgeRequest
from prefloop.spec import ActiveRun

STEPS = ("generation", "reward", "acquisition", "judge", "training")


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


def pair_id(run_name: str, item: PromptItem, a: Response, b: Response) -> str:
    """Order-free id of a pair of responses to one prompt: the judge's dedup key."""
    ka, kb = sorted((stable_id(a.model, a.text), stable_id(b.model, b.text)))
    return stable_id(run_name, item.prompt_id, ka, kb)


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
    @property
    def max_annotations(self) -> int:
        b = self.run.spec.budget.max_annotations
        return b if b is not None else 10**12

    def _stop_reason(self, state: RunState) -> str:
        if state.prompt_offset >= len(self.pool):
            return "prompts exhausted"
        if state.annotations_used >= self.max_annotations:
            return "annotation budget exhausted"
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
        inputs = AcquisitionInput(
            mean=scores.mean,
            std=scores.std,
            mask=batch.mask,
            samples=scores.samples,
            features=scores.features,
            pref_mean=scores.pref_mean,
            pref_var=scores.pref_var,
            judge_scores=batch.judge_scores,
            models=_models_array(items, batch.mask),
        )
        params = dict(spec.acquisition.params)
        rule_params = self.rule.parameters()
        if "pairs_per_prompt" in rule_params:
            params.setdefault("pairs_per_prompt", spec.pairs_per_prompt)
        if "max_pairs" in rule_params:
            params.setdefault("max_pairs", len(items) * spec.pairs_per_prompt)
        sel = self.roles.acquisition.select(
            inputs,
            method=spec.acquisition.method,
            params=params,
            seed=derive_seed(spec.seed, r, "acquisition"),
        )
        sel = self._within_budget(sel, state)
        timings["acquisition"] = time.perf_counter() - t

        t = time.perf_counter()
        pairs = self._label(state, items, sel)
        timings["judge"] = time.perf_counter() - t
        if self.publisher is not None:
            t = time.perf_counter()
            self.publisher.selections(
                r,
                prompt_ids,
                sel,
                method=spec.acquisition.method,
                pair_ids=_selection_pair_ids(self.run.metadata.name, items, sel),
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
        keep = [p for p in pairs if p.label_source != "pseudo" or spec.output.include_pseudo_labels]
        metrics = self._metrics(state, items, pairs, keep, sel, scores.timings, train.metrics)
        metrics.update({f"heldout_{k}": v for k, v in evaluation.items()})
        metrics.update({f"{k}_seconds": v for k, v in timings.items()})
        metrics["round_seconds"] = sum(timings.values())
        state.metrics.append(metrics)
        return [p.to_row() for p in keep]

    # -- steps ----------------------------------------------------------------------------------
    def _within_budget(self, sel: Selection, state: RunState) -> Selection:
        """Keep at most the remaining annotation budget of judge-bound pairs, best score first."""
        remaining = self.max_annotations - state.annotations_used
        needs_judge = sel.pseudo_label == 0
        if int(needs_judge.sum()) <= remaining:
            return sel
        order = np.argsort(-np.nan_to_num(sel.score, nan=-np.inf), kind="stable")
        judged_rank = np.cumsum(needs_judge[order])
        keep_sorted = ~needs_judge[order] | (judged_rank <= remaining)
        keep = np.sort(order[keep_sorted])
        return Selection(
            sel.prompt_index[keep],
            sel.first[keep],
            sel.second[keep],
            sel.score[keep],
            sel.pseudo_label[keep],
            {**sel.info, "budget_truncated": int(len(sel.first) - len(keep))},
        )

    def _label(
        self, state: RunState, items: list[PromptItem], sel: Selection
    ) -> list[PreferencePair]:
        """Ask the judge about new pairs (never twice), apply self-labels, build the pairs."""
        spec = self.run.spec
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
                first_wins = jd["winner_key"] == _response_key(item.responses[i])
                prob_first = (
                    jd["probability_winner"] if first_wins else 1 - jd["probability_winner"]
                )
                source = "judge"
                tie, rationale = bool(jd["tie"]), jd.get("rationale")
            else:
                first_wins = pseudo > 0
                prob_first = 1.0 if first_wins else 0.0
                source = "identity" if self.rule.name == "delta_qwen" else "pseudo"
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
                    acquisition=spec.acquisition.method,
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


def _selection_pair_ids(run_name: str, items: list[PromptItem], sel: Selection) -> list[str]:
    """The pair id of every selected pair, in selection order (for the selections topic)."""
    out = []
    for m in range(sel.size):
        item = items[int(sel.prompt_index[m])]
        first, second = item.responses[int(sel.first[m])], item.responses[int(sel.second[m])]
        out.append(pair_id(run_name, item, first, second))
    return out


def _models_array(items: list[PromptItem], mask: np.ndarray) -> np.ndarray:
    out = np.full(mask.shape, "", dtype=object)
    for p, it in enumerate(items):
        for n, r in enumerate(it.responses):
            out[p, n] = r.model
    return out


def _response_key(r: Response) -> str:
    return stable_id(r.model, r.text)


def _judgement_dict(req: JudgeRequest, j: Judgement) -> dict[str, Any]:
    """A judgement stored order-free: who won (by response key), with what probability."""
    if j.pair_id != req.pair_id:
        raise RuntimeError(f"judge answered pair {j.pair_id} for request {req.pair_id}")
    winner = req.a if j.winner == 0 else req.b
    p_a = float(j.probability_a)
    return {
        "winner_key": _response_key(winner),
        "probability_winner": p_a if j.winner == 0 else 1.0 - p_a,
        "score_a": j.score_a,
        "score_b": j.score_b,
        "tie": bool(j.tie),
        "rationale": j.rationale,
    }
