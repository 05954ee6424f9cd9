"""The ActiveRun CustomResourceDefinition, generated from the typed spec (never hand-kept).

``activerun_crd()`` turns the pydantic models of ``spec.py`` into a structural OpenAPI v3 schema
(refs inlined, ``Optional`` as ``nullable``, free-form parameter maps as
``x-kubernetes-preserve-unknown-fields``), adds the status subresource and printer columns, and
returns the CRD as a dict. ``charts/prefloop/crds/activerun.yaml`` is this output; a test fails
when the two drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from prefloop.spec import ActiveRunSpec

GROUP = "prefloop.dev"
VERSION = "v1alpha1"
PLURAL = "activeruns"


class Condition(BaseModel):
    """A metav1.Condition."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    type: str
    """CamelCase condition type: Progressing, BudgetExhausted, Suspended, Complete, Failed."""
    status: Literal["True", "False", "Unknown"]
    """Condition status."""
    reason: str = ""
    """CamelCase machine-readable reason."""
    message: str = ""
    """Human-readable detail."""
    last_transition_time: str | None = None
    """When status last changed (RFC 3339)."""
    observed_generation: int | None = None
    """metadata.generation the condition was computed from."""


class ActiveRunStatus(BaseModel):
    """Observed state of an ActiveRun (written by the operator, one patch per reconcile)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, use_attribute_docstrings=True
    )
    phase: Literal["Pending", "Running", "Suspended", "Succeeded", "Failed"] = "Pending"
    """Summary derived from the conditions."""
    round: Annotated[int, Field(ge=0)] = 0
    """Rounds completed."""
    round_phase: str = ""
    """Step of the current round: Generating, Scoring, Acquiring, Judging, Training."""
    annotations_used: Annotated[int, Field(ge=0)] = 0
    """Judge calls that produced a label."""
    reward_model_version: Annotated[int, Field(ge=0)] = 0
    """Checkpoint version of the reward model."""
    observed_generation: int | None = None
    """metadata.generation last reconciled."""
    conditions: list[Condition] = []
    """Conditions, one per type."""


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
        inner = _inline(rest[0], defs) if len(rest) == 1 else {"anyOf": _inline(rest, defs)}
        return {**inner, **_inline(base, defs), "nullable": True}
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


def activerun_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition object for ActiveRun."""
    spec_schema = openapi_schema(ActiveRunSpec)
    status_schema = openapi_schema(ActiveRunStatus)
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Round", "type": "integer", "jsonPath": ".status.round"},
        {"name": "Step", "type": "string", "jsonPath": ".status.roundPhase"},
        {"name": "Annotations", "type": "integer", "jsonPath": ".status.annotationsUsed"},
        {"name": "Method", "type": "string", "jsonPath": ".spec.acquisition.method"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "RM-Version",
            "type": "integer",
            "jsonPath": ".status.rewardModelVersion",
            "priority": 1,
        },
    ]
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
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "An active preference-data run.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }
