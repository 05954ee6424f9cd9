"""The CRD is generated from the spec, committed in the chart, and judges manifests as the API
server would: every example validates (schema + CEL on the defaulted object), bad manifests are
rejected (wrong type, out of bounds, unknown method by the enum, each CEL rule including the
transition rules), and each CEL rule agrees with the pydantic validator it mirrors.

No API server can run here, so the schema is checked with ``jsonschema`` (after the OpenAPI
v3.0 -> JSON Schema conversion below) and the ``x-kubernetes-validations`` with ``cel-python``,
after applying the schema's defaults the way the API server does before validating.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from prefloop.crd import ActiveRunStatus, activerun_crd, cel_rules
from prefloop.spec import SpecError, load_activerun, parse_activerun

EXAMPLES = sorted(Path(__file__).parents[1].glob("examples/*.yaml"))
CEL = celpy.Environment()


def _to_jsonschema(node: Any) -> Any:
    """OpenAPI v3.0 -> JSON Schema: nullable, boolean exclusive bounds, k8s extensions."""
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(key) is True:
            out[key] = out.pop(bound)
    if "properties" in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False  # the API server prunes; we want to see typos
    return out


@functools.cache
def _openapi() -> dict[str, Any]:
    schema: dict[str, Any] = activerun_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@functools.cache
def _schema() -> dict[str, Any]:
    return _to_jsonschema(copy.deepcopy(_openapi()))


@functools.cache
def _validator() -> Any:
    schema = _schema()
    return jsonschema.validators.validator_for(schema)(schema)


def _validate(manifest: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if the manifest breaks the CRD's schema."""
    _validator().validate(manifest)


@functools.cache
def _program(rule: str) -> Any:
    return CEL.program(CEL.compile(rule))


def _defaulted(schema: dict[str, Any], value: Any) -> Any:
    """Apply the schema's defaults like the API server does before validation (recursively)."""
    if isinstance(value, dict):
        out = dict(value)
        for name, sub in schema.get("properties", {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = _defaulted(sub, out[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = schema.get("properties", {})
            out.update({k: _defaulted(extra, v) for k, v in out.items() if k not in known})
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_defaulted(schema["items"], v) for v in value]
    return value


def _cel_failures(new: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Messages of every CEL rule the (defaulted) object violates; transition rules (those
    naming ``oldSelf``) are checked only on an update, where the old value exists."""
    schema = _openapi()
    new, old = _defaulted(schema, new), None if old is None else _defaulted(schema, old)
    failures = []
    for path, rules in cel_rules().items():
        value, previous = new, old
        for part in filter(None, path.split(".")):
            value = value.get(part) if isinstance(value, dict) else None
            previous = previous.get(part) if isinstance(previous, dict) else None
        if value is None:
            continue
        for rule in rules:
            activation = {"self": celpy.json_to_cel(value)}
            if "oldSelf" in rule["rule"]:
                if previous is None:
                    continue
                activation["oldSelf"] = celpy.json_to_cel(previous)
            if not _program(rule["rule"]).evaluate(activation):
                failures.append(rule["message"])
    return failures


def _manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "prefloop.dev/v1alpha1",
        "kind": "ActiveRun",
        "metadata": {"name": "r1"},
        "spec": spec,
    }


def test_committed_crd_is_current(repo_root: Path) -> None:
    committed = yaml.safe_load((repo_root / "charts/prefloop/crds/activerun.yaml").read_text())
    assert committed == activerun_crd(), "run `prefloop crd > charts/prefloop/crds/activerun.yaml`"


def test_crd_is_structural() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            assert node.get("additionalProperties") is not False, path
            assert "$ref" not in node, path
            if "anyOf" in node:  # only the int-or-string form of a quantity
                assert node.get("x-kubernetes-int-or-string") is True, path
                assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            elif "properties" in node or "items" in node:
                assert node.get("type") in {"object", "array"}, path
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(activerun_crd()["spec"]["versions"][0]["schema"], "schema")


def test_status_conditions_have_the_metav1_shape() -> None:
    status = _openapi()["properties"]["status"]["properties"]
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert item["properties"]["observedGeneration"]["type"] == "integer"
    for field in ("startTime", "completionTime"):
        assert status[field]["format"] == "date-time"
    phases = set(status["phase"]["enum"])
    assert phases == {"Pending", "Running", "Succeeded", "Failed", "Suspended"}
    # the status the operator writes validates against the schema, a wrong one does not
    good = ActiveRunStatus.model_validate(
        {
            "phase": "Running",
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "RoundInProgress",
                    "message": "round 2",
                    "lastTransitionTime": "2026-11-23T10:00:00Z",
                }
            ],
        }
    ).model_dump(by_alias=True, exclude_none=True)
    status_schema = _schema()["properties"]["status"]
    jsonschema.validate(good, status_schema)
    bad = copy.deepcopy(good)
    del bad["conditions"][0]["reason"]
    with pytest.raises(jsonschema.ValidationError, match="reason"):
        jsonschema.validate(bad, status_schema)


def test_printer_columns_name_existing_fields() -> None:
    version = activerun_crd()["spec"]["versions"][0]
    for column in version["additionalPrinterColumns"]:
        parts = column["jsonPath"].strip(".").split(".")
        if parts[0] == "metadata":
            continue
        node = version["schema"]["openAPIV3Schema"]
        for part in parts:
            node = node["properties"][part]  # KeyError: the column names no field
        assert node["type"] == column["type"] or column["type"] == "date", column


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_examples_validate_against_crd(example: Path) -> None:
    manifest = yaml.safe_load(example.read_text())
    _validate(manifest)
    assert _cel_failures(manifest) == []
    load_activerun(example)  # and against the typed spec


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"batchSise": 3}, "batchSise"),  # a typo
        ({"batchSize": "four"}, "'four' is not of type 'integer'"),
        ({"batchSize": 0}, "less than the minimum of 1"),
        ({"acquisition": {"method": "nope"}}, "'nope' is not one of"),
        ({"roles": {"reward": {"resources": {"limits": {"nvidia.com/gpu": "lots"}}}}}, "lots"),
        ({"roles": {"judge": {"endpoint": "no port"}}}, "no port"),
        ({"output": {"uri": "ftp://x/y"}}, "ftp://x/y"),
    ],
)
def test_schema_rejects_bad_manifests(spec: dict[str, Any], words: str) -> None:
    manifest = _manifest(**spec)
    with pytest.raises(jsonschema.ValidationError, match=words):
        _validate(manifest)
    with pytest.raises(SpecError):  # the typed spec agrees
        parse_activerun(manifest)


def test_schema_accepts_quantities_as_ints_and_strings() -> None:
    resources = {"limits": {"nvidia.com/gpu": 1, "memory": "16Gi"}, "requests": {"cpu": "500m"}}
    manifest = _manifest(roles={"generation": {"resources": resources}})
    _validate(manifest)
    parse_activerun(manifest)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (
            {
                "responses": {
                    "source": "models",
                    "models": [{"name": "a", "path": "/m/a"}, {"name": "b", "path": "/m/b"}],
                }
            },
            "judge.kind: oracle",
        ),
        (
            {"batchSize": 64, "pairsPerPrompt": 2, "trainer": {"replayBufferSize": 100}},
            "replayBufferSize",
        ),
        (
            {"acquisition": {"method": "bgpm_mv"}, "rewardModel": {"head": {"kind": "ensemble"}}},
            "rewardModel.head.kind",
        ),
        ({"rewardModel": {"embedder": {"kind": "hf_last_token"}}}, "modelPath"),
        (
            {
                "responses": {"source": "models", "models": [{"name": "a", "path": "/m/a"}]},
                "judge": {"kind": "oracle"},
            },
            "at least two",
        ),
        (
            {
                "responses": {
                    "source": "models",
                    "models": [{"name": "a", "backend": "policy"}, {"name": "b", "path": "/m"}],
                },
                "judge": {"kind": "reward_model", "rewardModel": {"path": "/rm"}},
            },
            "backend: policy",
        ),
        ({"storage": {"claimName": "data", "subPath": "runs/../../etc"}}, "'..'"),
        ({"roles": {"judge": {"replicas": 2}}}, "one replica"),
        ({"acquisition": {"candidatePoolSize": 100}}, "only with acquisition.scope: pool"),
        (
            {
                "evaluation": {"shadowRandom": True},
                "judge": {
                    "kind": "pairwise",
                    "llm": {
                        "backend": "openai",
                        "endpoint": {"baseUrl": "http://h:1/v1", "model": "m"},
                    },
                },
            },
            "shadowRandom needs judge.kind: oracle",
        ),
        ({"acquisition": {"diversity": "clusters"}}, "only with acquisition.scope: pool"),
        ({"acquisition": {"scope": "pool", "method": "adpo"}}, "cannot run adpo"),
        (
            {"acquisition": {"scope": "pool", "method": "ae_dpo", "diversity": "clusters"}},
            "applies to per-prompt rules",
        ),
        (
            {"batchSize": 32, "acquisition": {"scope": "pool", "candidatePoolSize": 16}},
            "candidatePoolSize is smaller than batchSize",
        ),
        (
            {
                "acquisition": {"scope": "pool"},
                "judge": {
                    "kind": "pairwise",
                    "llm": {
                        "backend": "openai",
                        "endpoint": {"baseUrl": "http://h:1/v1", "model": "m"},
                    },
                },
                "responses": {
                    "source": "models",
                    "models": [{"name": "a", "path": "/m/a"}, {"name": "b", "path": "/m/b"}],
                },
            },
            "needs responses.source: precomputed",
        ),
    ],
)
def test_cel_rules_reject_what_the_spec_rejects(spec: dict[str, Any], words: str) -> None:
    manifest = _manifest(**spec)
    _validate(manifest)  # the schema alone lets it through
    failures = _cel_failures(manifest)
    assert any(words in f for f in failures), failures
    with pytest.raises(SpecError):  # the pydantic validator it mirrors agrees
        parse_activerun(manifest)


def test_cel_rejects_a_name_too_long_for_child_objects() -> None:
    manifest = _manifest()
    manifest["metadata"]["name"] = "r" * 52
    assert any("63" in f for f in _cel_failures(manifest))
    manifest["metadata"]["name"] = "r" * 51
    assert _cel_failures(manifest) == []


@pytest.mark.parametrize(
    ("change", "immutable"),
    [
        ({"seed": 8}, "spec.seed"),
        ({"acquisition": {"method": "dts"}}, "spec.acquisition.method"),
        ({"prompts": {"path": "data/other.jsonl"}}, "spec.prompts"),
        ({"storage": {"claimName": "other"}}, "spec.storage"),
    ],
)
def test_transition_rules_keep_seed_method_and_data(change: dict[str, Any], immutable: str) -> None:
    old = _manifest(seed=7, storage={"claimName": "data"})
    new = copy.deepcopy(old)
    new["spec"].update(change)
    assert _cel_failures(new) == []  # a valid object on its own
    failures = _cel_failures(new, old)
    assert [f for f in failures if f.startswith(f"{immutable} is immutable")], failures


def test_transition_rules_let_budget_suspend_and_roles_change() -> None:
    old = _manifest(seed=7, storage={"claimName": "data"})
    new = copy.deepcopy(old)
    new["spec"].update(
        budget={"maxAnnotations": 50},
        suspend=True,
        roles={"generation": {"replicas": 0}},
    )
    assert _cel_failures(new, old) == []


def test_spec_reference_doc_is_current(repo_root: Path) -> None:
    from prefloop.spec_docs import render_spec_reference

    committed = (repo_root / "docs" / "spec.md").read_text()
    assert committed == render_spec_reference(), "run `python -m prefloop.spec_docs > docs/spec.md`"


def test_methods_table_doc_is_current(repo_root: Path) -> None:
    from prefloop.spec_docs import render_methods_reference

    committed = (repo_root / "docs" / "methods-table.md").read_text()
    assert committed == render_methods_reference(), (
        "run `python -m prefloop.spec_docs methods > docs/methods-table.md`"
    )
