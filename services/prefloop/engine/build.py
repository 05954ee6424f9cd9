"""Build the embedded roles of a run from its spec (the only place spec meets constructors)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefloop.data.records import PromptItem
from prefloop.engine.checkpoint import derive_seed
from prefloop.engine.local_roles import (
    LocalAcquisition,
    LocalGeneration,
    LocalJudge,
    LocalReward,
    LocalRewardModel,
    LocalTrainer,
)
from prefloop.engine.round_engine import Roles
from prefloop.generation.base import ModelBackend, PoolGenerator, ResponseGenerator, Sampling
from prefloop.generation.precomputed import PrecomputedGenerator
from prefloop.generation.system_prompts import (
    PRINCIPLE_PROMPTS,
    SystemPromptPolicy,
    load_principle_prompts,
)
from prefloop.judge.base import Judge
from prefloop.judge.from_spec import build_judge_from_spec
from prefloop.reward.embedders import make_embedder
from prefloop.reward.feature_cache import FeatureCache
from prefloop.reward.heads import make_head
from prefloop.spec import (
    ActiveRun,
    EmbedderSpec,
    HeadSpec,
    ModelSpec,
    ResponsesSpec,
    SystemPromptsSpec,
    resolve_path,
)
from prefloop.trainer.anchor_schedule import AnchorSchedule
from prefloop.trainer.replay_buffer import ReplayBuffer
from prefloop.trainer.reward_trainer import RewardModelTrainer

if TYPE_CHECKING:  # torch and transformers load only for a policy run
    from prefloop.trainer.policy import PolicyModel

JUDGE_CACHE_DIR = "judge-cache"
"""Where an embedded run keeps its live judge's answers (see :mod:`prefloop.judge.cache`)."""


def build_generator(
    run: ActiveRun, manifest_dir: Path | None, policy_model: PolicyModel | None = None
) -> ResponseGenerator:
    """Precomputed responses, or a pool with one backend per model (transformers, vLLM, an
    OpenAI-compatible endpoint, or ``policy``: samples from ``policy_model``, the policy in the
    loop), each with its sampling settings and the system prompts."""
    rs = run.spec.responses
    if rs.source == "precomputed":
        return PrecomputedGenerator()
    policy = system_prompt_policy(rs.system_prompts, manifest_dir)
    return PoolGenerator(
        [model_backend(m, rs, policy, manifest_dir, policy_model) for m in rs.models]
    )


def system_prompt_policy(sp: SystemPromptsSpec, manifest_dir: Path | None) -> SystemPromptPolicy:
    """The system-prompt policy of the pool: built-in texts, or those of ``sp.path``."""
    prompts = dict(PRINCIPLE_PROMPTS)
    if sp.path is not None:
        prompts.update(load_principle_prompts(resolve_path(sp.path, manifest_dir)))
    return SystemPromptPolicy(mode=sp.mode, principles=tuple(sp.principles), prompts=prompts)


def model_backend(
    m: ModelSpec,
    rs: ResponsesSpec,
    policy: SystemPromptPolicy,
    manifest_dir: Path | None,
    policy_model: PolicyModel | None = None,
) -> ModelBackend:
    """One model's backend; its sampling settings fall back to the pool's."""
    sampling = Sampling(
        max_new_tokens=m.max_new_tokens if m.max_new_tokens is not None else rs.max_new_tokens,
        temperature=m.temperature if m.temperature is not None else rs.temperature,
        top_p=m.top_p if m.top_p is not None else rs.top_p,
        seed=m.seed,
    )
    if m.backend == "policy":
        if policy_model is None:
            raise ValueError(
                f"responses.models {m.name!r}: backend: policy samples from the policy in the "
                "loop, which only an embedded run (prefloop run without --connect) holds in "
                "the generation role; give this model a path and another backend"
            )
        from prefloop.generation.policy_backend import PolicySampler

        return PolicySampler(
            m.name,
            policy_model,
            sampling=sampling,
            batch_size=m.transformers.batch_size,
            system_prompts=policy,
        )
    if m.backend == "openai":
        from prefloop.generation.openai_backend import OpenAIModel

        assert m.endpoint is not None  # the spec requires it
        return OpenAIModel(m.name, m.endpoint, sampling=sampling, system_prompts=policy)
    assert m.path is not None  # the spec requires it
    path = str(resolve_path(m.path, manifest_dir))
    if m.backend == "vllm":
        from prefloop.generation.vllm_backend import VLLMEngineOptions, VLLMModel

        options = VLLMEngineOptions(
            tensor_parallel_size=m.vllm.tensor_parallel_size,
            gpu_memory_utilization=m.vllm.gpu_memory_utilization,
            max_model_len=m.vllm.max_model_len,
            keep_loaded=m.vllm.keep_loaded,
            chat_template_kwargs=dict(m.vllm.chat_template_kwargs),
        )
        return VLLMModel(m.name, path, sampling=sampling, options=options, system_prompts=policy)
    from prefloop.generation.transformers_backend import TransformersModel

    return TransformersModel(
        m.name,
        path,
        sampling=sampling,
        batch_size=m.transformers.batch_size,
        device=m.transformers.device,
        system_prompts=policy,
    )


def embedder_params(es: EmbedderSpec, manifest_dir: Path | None) -> dict[str, object]:
    """Constructor arguments of the configured embedder."""
    params: dict[str, object] = {
        "max_length_tokens": es.max_length_tokens,
        "batch_size": es.batch_size,
        "device": es.device,
    }
    if es.kind == "hf_last_token":
        assert es.model_path is not None
        params["model_path"] = str(resolve_path(es.model_path, manifest_dir))
    return params


def head_params(hs: HeadSpec) -> dict[str, object]:
    """Constructor arguments of the configured head kind."""
    common: dict[str, object] = {}
    if hs.learning_rate is not None:
        common["learning_rate"] = hs.learning_rate
    if hs.kind == "ensemble":
        return {
            **common,
            "num_heads": hs.num_heads,
            "hidden_dim": hs.hidden_dim,
            "num_layers": hs.num_layers,
            "center_coefficient": hs.center_rewards_coefficient,
        }
    if hs.kind == "epinet":
        return {
            **common,
            "hidden_dim": hs.hidden_dim,
            "num_layers": hs.num_layers,
            "index_dim": hs.index_dim,
            "prior_scale": hs.prior_scale,
            "num_index_samples": hs.num_index_samples,
            "center_coefficient": hs.center_rewards_coefficient,
        }
    return {**common, "embed_dim": hs.preference_dim, "tau": hs.tau}


def build_reward_model(
    run: ActiveRun, run_dir: Path, manifest_dir: Path | None
) -> LocalRewardModel:
    """Embedder + feature cache + head + trainer, seeded from the run's seed."""
    spec = run.spec
    es = spec.reward_model.embedder
    embedder = make_embedder(es.kind, **embedder_params(es, manifest_dir))
    cache_dir = Path(es.cache_dir) if es.cache_dir else run_dir / "features"
    cache = FeatureCache(cache_dir)
    head = make_head(
        spec.reward_model.head.kind,
        input_dim=embedder.dim,
        seed=derive_seed(spec.seed, -1, "head-init"),
        **head_params(spec.reward_model.head),
    )
    a = spec.trainer.anchor
    trainer = RewardModelTrainer(
        head,
        ReplayBuffer(spec.trainer.replay_buffer_size),
        AnchorSchedule(initial=a.initial, decay=a.decay, base=a.base, scaler=a.scaler),
        max_steps_per_round=spec.trainer.max_steps_per_round,
        batch_size=spec.trainer.batch_size,
        passes_per_round=spec.trainer.epochs_per_round,
    )
    return LocalRewardModel(embedder, cache, head, trainer)


def judge_seed(run: ActiveRun) -> int:
    """The judge's seed, derived from the run's (the same in every mode)."""
    return derive_seed(run.spec.seed, -1, "judge")


def build_judge(
    run: ActiveRun, manifest_dir: Path | None = None, cache_dir: Path | None = None
) -> Judge:
    """The run's judge, seeded from the run's seed (the same in every mode); a live judge keeps
    its answers in ``cache_dir`` (in memory when None); people's votes (``judge.kind: human``)
    go beside it, in ``human-labels``."""
    if run.spec.judge.kind == "human":
        from prefloop.judge.human.judge import HUMAN_LABELS_DIR, human_judge_from_spec

        return human_judge_from_spec(
            run.spec.judge.human,
            seed=judge_seed(run),
            manifest_dir=manifest_dir,
            labels_dir=cache_dir.parent / HUMAN_LABELS_DIR if cache_dir is not None else None,
            max_annotations=run.spec.budget.max_annotations,
        )
    return build_judge_from_spec(
        run.spec.judge, seed=judge_seed(run), manifest_dir=manifest_dir, cache_dir=cache_dir
    )


def build_policy_model(run: ActiveRun, manifest_dir: Path | None) -> PolicyModel:
    """The policy in the loop (``trainer.kind: policy``) and its frozen reference."""
    from prefloop.trainer.policy import PolicyModel

    ps = run.spec.trainer.policy
    assert ps.model is not None  # the spec requires it with kind: policy
    path = resolve_path(ps.model, manifest_dir)
    model_path = str(path) if path.exists() else ps.model  # else a cached Hub id
    return PolicyModel(ps, model_path, seed=derive_seed(run.spec.seed, -1, "policy-init"))


def build_embedded_roles(
    run: ActiveRun, run_dir: Path, manifest_dir: Path | None
) -> tuple[Roles, LocalRewardModel | PolicyModel, LocalJudge]:
    """All five roles in this process; with ``trainer.kind: policy`` the reward and trainer
    roles are the policy's (``reward/policy.py``, ``trainer/policy.py``)."""
    if run.spec.trainer.kind == "policy":
        from prefloop.reward.policy import PolicyReward
        from prefloop.trainer.policy import PolicyTrainer

        policy = build_policy_model(run, manifest_dir)
        policy_judge = LocalJudge(build_judge(run, manifest_dir, run_dir / JUDGE_CACHE_DIR))
        policy_roles = Roles(
            generation=LocalGeneration(build_generator(run, manifest_dir, policy)),
            reward=PolicyReward(policy),
            acquisition=LocalAcquisition(),
            judge=policy_judge,
            trainer=PolicyTrainer(policy),
        )
        return policy_roles, policy, policy_judge
    model = build_reward_model(run, run_dir, manifest_dir)
    judge = LocalJudge(build_judge(run, manifest_dir, run_dir / JUDGE_CACHE_DIR))
    roles = Roles(
        generation=LocalGeneration(build_generator(run, manifest_dir)),
        reward=LocalReward(model),
        acquisition=LocalAcquisition(),
        judge=judge,
        trainer=LocalTrainer(model),
    )
    return roles, model, judge


def check_pool(items: list[PromptItem], source: str) -> None:
    """Precomputed pools need two responses per prompt; say which prompt has fewer."""
    for n, it in enumerate(items):
        if source == "precomputed" and len(it.responses) < 2:
            raise ValueError(
                f"prompt {it.prompt_id!r} (row {n + 1}) has {len(it.responses)} response(s); "
                "responses.source: precomputed needs at least 2 per prompt, or use source: models"
            )
