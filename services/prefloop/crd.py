"""The ActiveRun CustomResourceDefinition, generated from the typed spec (never hand-kept).

``activerun_crd()`` turns the pydantic models of ``spec.py`` into a structural OpenAPI v3 schema
(refs inlined, ``Optional`` as ``nullable``, free-form maps as
``x-kubernetes-preserve-unknown-fields``, quantities as ``x-kubernetes-int-or-string``), makes
``acquisition.method`` an enum of the registry's rules, adds the cross-field and immutability
rules as CEL (``x-kubernetes-validations``, each mirroring a pydantic validator so a manifest is
judged the same by ``prefloop validate`` and by the API server), the status subresource with the
standard ``metav1.Condition`` list and the printer columns, and returns the CRD as a dict.
``charts/prefloop/crds/activerun.yaml`` is this output; a test fails when the two drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from prefloop.spec import DATA_INPUTS, HEAD_INPUTS, RUN_NAME_MAX_LENGTH, ActiveRunSpec
from prefloop.spec_cluster import STATEFUL_ROLES

GROUP = "prefloop.dev"
VERSION = "v1alpha1"
PLURAL = "activeruns"
LONGEST_CHILD_SUFFIX = "-acquisition"
"""The longest suffix the operator appends to a run's name (Service names are <= 63 chars)."""
NAME_LIMIT = min(RUN_NAME_MAX_LENGTH, 63 - len(LONGEST_CHILD_SUFFIX))
DATE_TIME = {"format": "date-time"}
CONDITION_TYPES = ("Ready", "Progressing", "Suspended", "Succeeded", "Failed")


class Condition(BaseModel):
    """A metav1.Condition: one aspect of the run's state."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, use_attribute_docstrings=True
    )
    type: Annotated[str, Field(max_length=316, pattern=r"^[A-Z][A-Za-z0-9]*$")]
    """CamelCase condition type: Ready, Progressing, Suspended, Succeeded, Failed."""
    status: Literal["True", "False", "Unknown"]
    """Condition status."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """metadata.generation the condition was computed from."""
    last_transition_time: Annotated[str, Field(json_schema_extra=DATE_TIME)]
    """When status last changed (RFC 3339)."""
    reason: Annotated[
        str,
        Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
    ]
    """CamelCase machine-readable reason."""
    message: Annotated[str, Field(max_length=32768)]
    """Human-readable detail."""


class ActiveRunStatus(BaseModel):
    """Observed state of an ActiveRun, computed by the operator from what it observes (children,
    the driver's progress) and written in one place."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, use_attribute_docstrings=True
    )
    phase: Literal["Pending", "Running", "Suspended", "Succeeded", "Failed"] = "Pending"
    """Summary derived from the conditions."""
    reason: str = ""
    """CamelCase reason of the phase (e.g. `AnnotationBudgetExhausted`, `DriverFailed`)."""
    message: str = ""
    """Human-readable detail of the phase."""
    round: Annotated[int, Field(ge=0)] = 0
    """Rounds completed (each checkpointed)."""
    round_phase: str = ""
    """Step of the current round: Generating, Scoring, Acquiring, Judging, Training."""
    annotations_used: Annotated[int, Field(ge=0)] = 0
    """Judge calls that produced a label."""
    budget: Annotated[int, Field(ge=0)] | None = None
    """The annotation budget (spec.budget.maxAnnotations); null: no limit."""
    reward_model_version: Annotated[int, Field(ge=0)] = 0
    """Checkpoint version of the reward model."""
    heldout_accuracy: float | None = None
    """Held-out pairwise accuracy of the reward model after the last round."""
    dataset_location: str = ""
    """Where the dataset is: the run directory on the volume, or output.uri once copied."""
    start_time: Annotated[str, Field(json_schema_extra=DATE_TIME)] | None = None
    """When the driver first started (RFC 3339)."""
    completion_time: Annotated[str, Field(json_schema_extra=DATE_TIME)] | None = None
    """When the run reached Succeeded or Failed (RFC 3339)."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """metadata.generation last reconciled."""
    driver_restarts: Annotated[int, Field(ge=0)] = 0
    """Driver Jobs the operator replaced after losing the driver's heartbeat."""
    conditions: Annotated[
        list[Condition],
        Field(
            max_length=8,
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        ),
    ] = []
    """Conditions, one per type (Ready, Progressing, Suspended, Succeeded, Failed)."""


def _int_or_string(any_of: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``int | str`` (a Kubernetes quantity) as the structural int-or-string form."""
    types = {s.get("type") for s in any_of}
    if types != {"integer", "string"} or len(any_of) != 2:
        return None
    out: dict[str, Any] = {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    }
    pattern = next((s["pattern"] for s in any_of if "pattern" in s), None)
    if pattern:
        out["pattern"] = pattern
    return out


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Resolve $refs, drop titles, turn Optional into nullable, free maps into preserved fields."""
    if isinstance(schema, list):
        return [_inline(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _inline(merged, defs)
    any_of = schema.get("anyOf")
    if any_of and any(s.get("type") == "null" for s in any_of):
        rest = [s for s in any_of if s.get("type") != "null"]
        base = {k: v for k, v in schema.items() if k != "anyOf"}
        inner = _inline(rest[0] if len(rest) == 1 else {"anyOf": rest}, defs)
        return {**inner, **_inline(base, defs), "nullable": True}
    if any_of and (quantity := _int_or_string(any_of)) is not None:
        rest_keys = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**quantity, **_inline(rest_keys, defs)}
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in {"title", "$defs"}:
            continue
        if k == "properties":
            out[k] = {name: _inline(s, defs) for name, s in v.items()}
        elif k == "additionalProperties" and v is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif k == "additionalProperties" and v is False:
            continue  # structural schemas forbid it; the API server prunes unknown fields
        elif k == "description" and isinstance(v, str):
            out[k] = " ".join(v.split())
        elif k == "const":
            out["enum"] = [v]
        elif k in {"exclusiveMinimum", "exclusiveMaximum"} and not isinstance(v, bool):
            out["minimum" if k == "exclusiveMinimum" else "maximum"] = v
            out[k] = True  # OpenAPI v3.0 form
        elif k == "default" and v is None:
            continue
        else:
            out[k] = _inline(v, defs)
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Structural OpenAPI v3 schema of a pydantic model, camelCase keys."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    result: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    return result


def _cel_list(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _head_rules() -> list[dict[str, str]]:
    """One rule per reward-head output some acquisition rules need (generated from the registry
    and ``spec.HEAD_INPUTS``; mirrors ``ActiveRunSpec._head_gives_what_the_rule_needs``)."""
    from prefloop.acquisition.registry import get_rule, rule_names

    rules = []
    needs = set().union(*(get_rule(m).needs for m in rule_names())) - {"features"} - DATA_INPUTS
    for need in sorted(needs):
        methods = [m for m in rule_names() if need in get_rule(m).needs]
        if not methods:
            continue
        heads = sorted(kind for kind, gives in HEAD_INPUTS.items() if need in gives)
        if len(heads) == len(HEAD_INPUTS):
            continue  # every head gives it: nothing to check
        allowed = f"self.rewardModel.head.kind in {_cel_list(heads)}" if heads else "false"
        rules.append(
            {
                "rule": f"!(self.acquisition.method in {_cel_list(methods)}) || {allowed}",
                "message": f"acquisition.method needs {need!r} from the reward head; "
                + (f"set rewardModel.head.kind to one of {heads}" if heads else "no head gives it"),
                "fieldPath": ".acquisition.method",
                "reason": "FieldValueInvalid",
            }
        )
    return rules


def _immutable(field: str) -> dict[str, str]:
    return {
        "rule": "self == oldSelf",
        "message": f"spec.{field} is immutable once the run exists (the checkpoints depend on "
        "it); create a new ActiveRun instead",
    }


def _pool_scope_rules() -> list[dict[str, str]]:
    """The rules of ``acquisition.scope`` (generated from the registry; mirror
    ``AcquisitionSpec._pool_scope_fits_the_rule``)."""
    from prefloop.acquisition.registry import get_rule, rule_names

    refused = [m for m in rule_names() if get_rule(m).pool_value is None]
    batch = [m for m in rule_names() if get_rule(m).pool_value == "batch"]
    return [
        {
            "rule": "self.scope == 'pool' || "
            "(self.candidatePoolSize == 0 && self.diversity == 'none')",
            "message": "acquisition.candidatePoolSize and acquisition.diversity apply only with "
            "acquisition.scope: pool",
            "fieldPath": ".scope",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": f"self.scope != 'pool' || !(self.method in {_cel_list(refused)})",
            "message": f"acquisition.scope: pool cannot run {', '.join(refused)} (no max_pairs)",
            "fieldPath": ".scope",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": f"self.scope != 'pool' || self.diversity == 'none' || "
            f"!(self.method in {_cel_list(batch)})",
            "message": "acquisition.diversity: clusters applies to per-prompt rules; batch rules "
            "choose across the pool themselves",
            "fieldPath": ".diversity",
            "reason": "FieldValueInvalid",
        },
    ]


def cel_rules() -> dict[str, list[dict[str, str]]]:
    """CEL rules by schema location (dotted property path, "" = the object itself).

    Each mirrors a pydantic validator of the spec, so the API server rejects what
    ``prefloop validate`` rejects; the transition rules (``oldSelf``) have no pydantic twin:
    they protect a running run's checkpoints from a spec that no longer matches them.
    """
    return {
        "": [
            {
                "rule": f"size(self.metadata.name) <= {NAME_LIMIT}",
                "message": f"metadata.name: at most {NAME_LIMIT} characters, so the run's child "
                f"objects (<name>{LONGEST_CHILD_SUFFIX}) fit in 63",
            }
        ],
        "spec": [
            {
                "rule": "self.responses.source != 'models' || self.judge.kind != 'oracle'",
                "message": "judge.kind: oracle reveals stored judge scores, but "
                "responses.source: models generates new responses that have none",
                "fieldPath": ".judge.kind",
                "reason": "FieldValueInvalid",
            },
            {
                "rule": "self.trainer.replayBufferSize >= self.batchSize * self.pairsPerPrompt",
                "message": "trainer.replayBufferSize is smaller than the pairs one round may "
                "label (batchSize * pairsPerPrompt)",
                "fieldPath": ".trainer.replayBufferSize",
                "reason": "FieldValueInvalid",
            },
            {
                "rule": "self.trainer.kind == 'policy' || "
                "!self.responses.models.exists(m, m.backend == 'policy')",
                "message": "responses.models: backend: policy samples from the policy in the "
                "loop, but trainer.kind is not policy",
                "fieldPath": ".trainer.kind",
                "reason": "FieldValueInvalid",
            },
            *_head_rules(),
            {
                "rule": "!self.evaluation.shadowRandom || self.judge.kind == 'oracle'",
                "message": "evaluation.shadowRandom needs judge.kind: oracle (free labels)",
                "fieldPath": ".evaluation.shadowRandom",
                "reason": "FieldValueInvalid",
            },
            {
                "rule": "self.acquisition.scope != 'pool' || self.responses.source != 'models'",
                "message": "acquisition.scope: pool ranks every candidate prompt's responses "
                "each round; it needs responses.source: precomputed",
                "fieldPath": ".acquisition.scope",
                "reason": "FieldValueInvalid",
            },
            {
                "rule": "self.acquisition.scope != 'pool' || "
                "self.acquisition.candidatePoolSize == 0 || "
                "self.acquisition.candidatePoolSize >= self.batchSize",
                "message": "acquisition.candidatePoolSize is smaller than batchSize",
                "fieldPath": ".acquisition.candidatePoolSize",
                "reason": "FieldValueInvalid",
            },
        ],
        "spec.acquisition": _pool_scope_rules(),
        "spec.seed": [_immutable("seed")],
        "spec.acquisition.method": [_immutable("acquisition.method")],
        "spec.prompts": [_immutable("prompts")],
        "spec.storage": [_immutable("storage")],
        "spec.storage.subPath": [
            {
                "rule": "!self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')",
                "message": "storage.subPath must be relative, without '..'",
            }
        ],
        "spec.responses": [
            {
                "rule": "self.source != 'models' || size(self.models) >= 2",
                "message": "source: models needs at least two entries in models",
                "fieldPath": ".models",
            }
        ],
        "spec.rewardModel.embedder": [
            {
                "rule": "self.kind != 'hf_last_token' || (has(self.modelPath) && "
                "self.modelPath != '')",
                "message": "kind: hf_last_token needs modelPath, a local model directory",
                "fieldPath": ".modelPath",
            }
        ],
        **{
            f"spec.roles.{role}": [
                {
                    "rule": "has(self.endpoint) || self.replicas <= 1",
                    "message": f"roles.{role}.replicas: the {role} keeps state (its log or "
                    "model); run one replica",
                    "fieldPath": ".replicas",
                }
            ]
            for role in STATEFUL_ROLES
        },
    }


def _node(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in filter(None, path.split(".")):
        node = node["properties"][part]
    return node


def activerun_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the ActiveRun object: spec, status, enums and CEL rules."""
    from prefloop.acquisition.registry import rule_names

    spec_schema = openapi_schema(ActiveRunSpec)
    spec_schema["properties"]["acquisition"]["properties"]["method"]["enum"] = rule_names()
    schema: dict[str, Any] = {
        "type": "object",
        "description": "An active preference-data run.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": openapi_schema(ActiveRunStatus),
        },
    }
    for path, rules in cel_rules().items():
        _node(schema, path).setdefault("x-kubernetes-validations", []).extend(rules)
    return schema


def printer_columns() -> list[dict[str, Any]]:
    """What ``kubectl get ar`` shows (priority 1: only with ``-o wide``)."""
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Round", "type": "integer", "jsonPath": ".status.round"},
        {"name": "Annotations", "type": "integer", "jsonPath": ".status.annotationsUsed"},
        {"name": "Budget", "type": "integer", "jsonPath": ".status.budget"},
        {"name": "Method", "type": "string", "jsonPath": ".spec.acquisition.method"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Step", "type": "string", "jsonPath": ".status.roundPhase", "priority": 1},
        {
            "name": "RM-Version",
            "type": "integer",
            "jsonPath": ".status.rewardModelVersion",
            "priority": 1,
        },
        {"name": "Dataset", "type": "string", "jsonPath": ".status.datasetLocation", "priority": 1},
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
    ]


def activerun_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition object for ActiveRun."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": "ActiveRun",
                "listKind": "ActiveRunList",
                "plural": PLURAL,
                "singular": "activerun",
                "shortNames": ["ar"],
                "categories": ["all", "prefloop"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {"openAPIV3Schema": activerun_schema()},
                }
            ],
        },
    }
